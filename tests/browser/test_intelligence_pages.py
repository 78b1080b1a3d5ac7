"""What the intelligence says, on the pages, in a real Chromium (fixtures in conftest.py).

The server here is built in this process, as `rackwatch run` wires it without the twin's
pacing: 45 minutes of the fan-fail room (c01/r01/s03/fan1 stops at 30 min) through the bus,
the store writer, the alert engine and the intelligence consumer, so GET /health/now and GET
/predictions answer from the real consumer. The diagnosis' incident events (and one more fan
wear prediction) are then written into the same store, shaped by `Incident.attributes`, which
is what GET /incidents reads. The user's view, checked: health chips with their class on the
room, the cluster, the rack and every server tile; incident rows with their cause, nature,
devices, action and evidence (server-supplied text shown as text, never as markup); prediction
rows with the time to failure and its interval; the KPIs of GET /status's `intelligence`, a
dash for each figure it lacks; a server's open incidents on its page.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.app import inventory_records
from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.diagnosis.incident import Cause, Incident, Member, Nature, Scope
from rackwatch.engine.energy import EnergyConfig, LiveEnergy, Tariff
from rackwatch.engine.intelligence import SOURCE, Intelligence
from rackwatch.engine.live import LiveState, feed
from rackwatch.engine.writer import StoreWriter
from rackwatch.model import Event, EventKind, SeriesRegistry, Severity
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.sources.twin import TwinSource
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.twin import Twin

pytestmark = pytest.mark.browser

START_MS = 1_767_225_600_000
MINUTES = 45
END_MS = START_MS + MINUTES * 60_000
SERVERS = [f"c01/r01/s0{i}" for i in range(1, 6)]
FAILED_SERVER = "c01/r01/s03"  # its fan1 stops at 30 min
WORN_FAN = "c01/r01/s02/fan2"
LIVE_INDICATOR = '#conn[data-state="live"]'
CRITICITY = re.compile(r"low|medium|high|critical")
DASH = "\u2014"
NO_FAN_CONTROL = r"503 \(Service Unavailable\) \(http://[^)]*/api/v1/fans\?"

# Markup in server-supplied text must reach the user as text.
ACTION = "Move the load away from c01/r01/s03 and replace <b>fan1</b>"
FAN_INCIDENT = Incident(
    id="inc-test-fan",
    scope=Scope.SERVER,
    scope_entity=FAILED_SERVER,
    nature=Nature.REAL,
    cause=Cause.FAN_FAILURE,
    action=ACTION,
    start_ms=START_MS + 30 * 60_000,
    devices=[FAILED_SERVER],
    members=[Member(f"{FAILED_SERVER}/fan1", "fan_rpm", "stuck", START_MS + 30 * 60_000)],
    evidence=["fan_rpm stuck at 0 rpm for 80 s", "cpu_temperature_celsius +9.1 °C"],
)
SENSOR_INCIDENT = Incident(
    id="inc-test-sensor",
    scope=Scope.SERVER,
    scope_entity="c01/r01/s01",
    nature=Nature.SENSOR,
    cause=Cause.SENSOR_STUCK,
    action="Check the inlet temperature sensor of c01/r01/s01",
    start_ms=START_MS + 35 * 60_000,
    devices=["c01/r01/s01"],
    evidence=["inlet_temperature_celsius flat for 10 min while its neighbours moved"],
)
CLOSED_INCIDENT = Incident(
    id="inc-test-closed",
    scope=Scope.RACK,
    scope_entity="c01/r01",
    nature=Nature.REAL,
    cause=Cause.COOLING,
    action="Check the cooling of rack c01/r01",
    start_ms=START_MS + 5 * 60_000,
    devices=["c01/r01/s04", "c01/r01/s05"],
    end_ms=START_MS + 15 * 60_000,
)


def incident_events() -> list[Event]:
    def event(kind: EventKind, ts: int, incident: Incident) -> Event:
        attributes = incident.attributes()
        return Event(ts, str(kind), incident.scope_entity, Severity.WARNING, attributes)

    return [
        event(
            EventKind.INCIDENT_OPENED, START_MS + 6 * 60_000, replace(CLOSED_INCIDENT, end_ms=None)
        ),
        event(EventKind.INCIDENT_CLOSED, START_MS + 15 * 60_000, CLOSED_INCIDENT),
        event(EventKind.INCIDENT_OPENED, START_MS + 32 * 60_000, FAN_INCIDENT),
        event(EventKind.INCIDENT_OPENED, START_MS + 36 * 60_000, SENSOR_INCIDENT),
    ]


def wear_prediction() -> Event:
    """A fan wearing out: fails in about 14 h, between 10 h and 22 h (docs/API.md's example)."""
    made = END_MS - 60_000
    attributes = {
        "what": "fan wear",
        "metric": "fan_rpm",
        "eta_s": 49_368.7,
        "low_s": 35_531.3,
        "high_s": 79_702.6,
        "failure_ms": made + 49_368_700,
        "failure_low_ms": made + 35_531_300,
        "failure_high_ms": made + 79_702_600,
        "ratio_now": 0.9629,
        "ratio_last": 0.97,
    }
    return Event(
        made, str(EventKind.PREDICTION_FAN_FAILURE), WORN_FAN, Severity.WARNING, attributes
    )


async def build_room(path: Path) -> tuple[ApiContext, DuckDBStore]:
    """The fan-fail room through the pipeline (as tests/unit/api/test_health_routes.py)."""
    registry = SeriesRegistry()
    store = DuckDBStore(path, registry, clock=lambda: END_MS)
    twin = Twin.from_scenario("fan-fail", seed=1, start_ms=START_MS)
    store.upsert_inventory(inventory_records(twin))
    source = TwinSource(twin, registry)
    bus = MemoryBus()
    live = LiveState(len(registry))
    writer = StoreWriter(bus, store)
    alerts = AlertEngine(
        bus, registry, build_alert_rules(AlertSettings()), derived_sources=(SOURCE,)
    )
    intelligence = Intelligence(bus, registry, alerts=alerts)
    tasks = [
        asyncio.create_task(job)
        for job in (writer.run(), alerts.run(), intelligence.run(), feed(bus, live))
    ]
    for ready in (writer.ready, alerts.ready, intelligence.ready):
        await ready.wait()
    for _ in range(MINUTES):
        batch, faults = source.read(12)
        await bus.publish(subjects.telemetry("twin"), batch)
        for fault in faults:
            await bus.publish(subjects.events(fault.kind), fault)
        await asyncio.sleep(0.01)
    assert await intelligence.settle(30)
    bus.close()
    await asyncio.gather(*tasks)
    store.write_events([*incident_events(), wear_prediction()])
    store.flush()
    ctx = ApiContext(
        store=store,
        registry=registry,
        live=live,
        bus=MemoryBus(),
        alerts=alerts,
        intelligence=intelligence,
        scenario="fan-fail",
        clock_ms=lambda: END_MS,
        energy=EnergyConfig(live=LiveEnergy(registry, Tariff(0.2))),  # the overview's tile
    )
    return ctx, store


@pytest.fixture(scope="module")
def intel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The room built and served in a thread with its own event loop (the browser's sync API
    keeps one running in this thread); its base URL, without the trailing slash."""
    path = tmp_path_factory.mktemp("intelligence") / "store.duckdb"
    ready = threading.Event()
    found: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        found["stop"], found["loop"] = stop, asyncio.get_running_loop()
        try:
            ctx, store = await asyncio.wait_for(build_room(path), 120)
            try:
                async with serving(create_app(ctx), "127.0.0.1", 0) as url:
                    found["url"] = url.rstrip("/")
                    ready.set()
                    await stop.wait()
            finally:
                store.close()
        except BaseException as exc:
            found["error"] = exc
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(180), "the room was not built in 3 minutes"
    if "error" in found:
        raise found["error"]
    yield found["url"]
    found["loop"].call_soon_threadsafe(found["stop"].set)
    thread.join(15)


def with_status(tab: Any, intelligence: dict[str, Any] | None) -> None:
    """GET /status as the server answers it, with `intelligence` replaced (None: left out), so
    the KPIs can be checked whatever this server's /status already gives."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body.pop("intelligence", None)
        if intelligence is not None:
            body["intelligence"] = intelligence
        route.fulfill(response=response, body=json.dumps(body))

    tab.page.route(re.compile(r"/api/v1/status(\?|$)"), handle)


def text(tab: Any, selector: str) -> str:
    return " ".join((tab.page.text_content(selector) or "").split())


def test_overview_health_chips_on_room_cluster_rack_and_every_server(
    intel_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    tab.page.goto(intel_server)
    tab.page.wait_for_selector(LIVE_INDICATOR)
    tab.page.wait_for_function(
        "n => document.querySelectorAll('.tile .health-chip[data-criticity]').length === n",
        arg=len(SERVERS),
    )
    chips = tab.page.locator(".tile .health-chip").evaluate_all(
        """cs => cs.map(c => [c.dataset.healthOf, c.dataset.criticity,
                              c.querySelector('.health-value').textContent,
                              c.querySelector('.health-class').textContent])"""
    )
    by_server = {entity: (criticity, value, shown) for entity, criticity, value, shown in chips}
    # a chip names what it scores without posing as the tile (`[data-entity]` is the tile's)
    assert tab.page.locator('[data-entity="c01/r01/s01"]').count() == 1
    assert sorted(by_server) == SERVERS
    for criticity, value, shown in by_server.values():
        assert CRITICITY.fullmatch(criticity) and shown == criticity  # the class is written
        assert re.fullmatch(r"\d{1,3}", value)
    assert by_server["c01/r01/s01"][:2] == ("low", "100")
    assert by_server[FAILED_SERVER][0] in ("high", "critical")  # its fan stopped

    room = tab.page.locator("#room-health .health-chip")
    assert CRITICITY.fullmatch(room.get_attribute("data-criticity") or "")
    assert "room: health" in (room.get_attribute("title") or "")  # reasons in the tooltip
    cluster = tab.page.locator('#cluster-health .health-chip[data-health-of="c01"]')
    assert CRITICITY.fullmatch(cluster.get_attribute("data-criticity") or "")
    rack = tab.page.locator('.rack-title .health-chip[data-health-of="c01/r01"]')
    assert rack.is_visible() and CRITICITY.fullmatch(rack.get_attribute("data-criticity") or "")
    tab.page.screenshot(path=screenshot_dir / "overview-intelligence.png", full_page=True)
    tab.assert_no_errors()


def test_overview_incidents_panel(intel_server: str, open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto(intel_server)
    fan_row = tab.page.locator(f'#incidents .incident[data-id="{FAN_INCIDENT.id}"]')
    fan_row.wait_for()
    assert text(tab, f'#incidents [data-id="{FAN_INCIDENT.id}"] .incident-cause') == "Fan failure"
    assert fan_row.locator(".incident-nature").text_content() == "real problem"
    assert fan_row.locator(".incident-scope").text_content() == "server"
    # the action as the diagnosis wrote it, markup included, as text
    action = fan_row.locator(".incident-action")
    assert ACTION in (action.text_content() or "")
    assert action.locator("b").count() == 0
    assert fan_row.locator(".incident-evidence li").all_text_contents() == FAN_INCIDENT.evidence
    device = fan_row.locator(".incident-device")
    assert device.all_text_contents() == [FAILED_SERVER]
    assert device.get_attribute("href") == f"server.html?entity={FAILED_SERVER}"
    assert "1 anomaly" in (fan_row.locator(".incident-count").text_content() or "")

    sensor_row = tab.page.locator(f'#incidents .incident[data-id="{SENSOR_INCIDENT.id}"]')
    assert sensor_row.locator(".incident-nature").text_content() == "sensor fault"
    assert sensor_row.locator(".incident-cause").text_content() == "Sensor stuck"

    # the closed one: dimmed, after every open one, with when it closed
    rows = tab.page.locator("#incidents .incident").evaluate_all(
        "rs => rs.map(r => [r.dataset.id, r.dataset.open, r.classList.contains('incident-closed')])"
    )
    ours = [r for r in rows if r[0].startswith("inc-test-")]
    assert ours == [
        [SENSOR_INCIDENT.id, "true", False],
        [FAN_INCIDENT.id, "true", False],
        [CLOSED_INCIDENT.id, "false", True],
    ]
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)  # open first
    closed = tab.page.locator(f'#incidents .incident[data-id="{CLOSED_INCIDENT.id}"]')
    assert (closed.locator(".incident-when").text_content() or "").startswith("closed ")
    assert closed.locator(".incident-device").all_text_contents() == CLOSED_INCIDENT.devices
    n_open = sum(r[1] == "true" for r in rows)
    assert tab.page.text_content("#incidents-count") == str(n_open)
    tab.assert_no_errors()


def test_overview_predictions_panel(intel_server: str, open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto(intel_server)
    worn = tab.page.locator(f'#predictions .prediction[data-device="{WORN_FAN}"]')
    worn.wait_for()
    assert worn.get_attribute("data-status") == "active"
    eta = worn.locator(".prediction-eta").text_content() or ""
    # about 13.7 h, between 9.9 h and 22.1 h, counted from the server's now
    assert re.fullmatch(r"fails in 13 h \d+ min \(9 h \d+ min to 22 h \d+ min\)", eta), eta
    sub = worn.locator(".prediction-sub").text_content() or ""
    assert re.search(r"as of \d\d:\d\d:\d\d", sub) and "96.3 % of healthy" in sub, sub
    link = worn.locator(".prediction-entity")
    assert link.get_attribute("href") == "server.html?entity=c01/r01/s02"
    stopped = tab.page.locator(f'#predictions .prediction[data-device="{FAILED_SERVER}/fan1"]')
    assert stopped.get_attribute("data-status") == "failed"
    assert stopped.locator(".prediction-eta").text_content() == "has failed"
    tab.assert_no_errors()


KPI_IDS = [
    "kpi-anomalies-per-day",
    "kpi-incidents-open",
    "kpi-latency-median",
    "kpi-latency-p95",
    "kpi-model-version",
]


@pytest.mark.parametrize(
    "intelligence",
    [
        None,
        {
            "anomalies_per_day": None,
            "incidents_open": 0,
            "detection_latency_s": {"median": None, "p95": None, "n_faults": 0},
            "model": {"version": None, "trained_at": None},
        },
    ],
    ids=["absent", "nulls"],
)
def test_kpis_show_a_dash_for_what_the_server_does_not_give(
    intel_server: str, open_tab: Any, intelligence: dict[str, Any] | None
) -> None:
    tab = open_tab()
    with_status(tab, intelligence)
    tab.page.goto(intel_server)
    tab.page.wait_for_selector("#scenario:not([hidden])")  # /status has been read
    shown = {kpi: text(tab, f"#{kpi}") for kpi in KPI_IDS}
    expected = dict.fromkeys(KPI_IDS, DASH)
    if intelligence is not None:
        expected["kpi-incidents-open"] = "0"
    assert shown == expected
    faults = "0 faults" if intelligence is not None else f"{DASH} faults"
    assert text(tab, "#kpi-latency-faults") == faults
    assert text(tab, "#kpi-model-trained") == f"trained {DASH}"
    tab.assert_no_errors()


def test_kpis_show_the_figures(intel_server: str, open_tab: Any) -> None:
    tab = open_tab()
    with_status(
        tab,
        {
            "anomalies_per_day": 3.5,
            "incidents_open": 2,
            "detection_latency_s": {"median": 42.0, "p95": 95.0, "n_faults": 7},
            "model": {"version": "residual-v3", "trained_at": END_MS},
        },
    )
    tab.page.goto(intel_server)
    tab.page.wait_for_function(
        "() => document.querySelector('#kpi-model-version').textContent === 'residual-v3'"
    )
    assert text(tab, "#kpi-anomalies-per-day") == "3.5"
    assert text(tab, "#kpi-incidents-open") == "2"
    assert text(tab, "#kpi-latency-median") == "42 s"
    assert text(tab, "#kpi-latency-p95") == "1 min 35 s"
    assert text(tab, "#kpi-latency-faults") == "7 faults"
    assert re.fullmatch(r"trained \d\d:\d\d:\d\d", text(tab, "#kpi-model-trained"))
    tab.assert_no_errors()


def test_server_page_lists_its_open_incidents(
    intel_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    tab.page.goto(f"{intel_server}/server.html?entity={FAILED_SERVER}")
    row = tab.page.locator(f'#incidents .incident[data-id="{FAN_INCIDENT.id}"]')
    row.wait_for()
    assert row.locator(".incident-cause").text_content() == "Fan failure"
    assert ACTION in (row.locator(".incident-action").text_content() or "")
    ids = tab.page.locator("#incidents .incident").evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert CLOSED_INCIDENT.id not in ids and SENSOR_INCIDENT.id not in ids  # open, its own
    assert tab.page.text_content("#incidents-count") == str(len(ids))
    tab.page.screenshot(path=screenshot_dir / "server-incidents.png")

    quiet = open_tab()
    quiet.page.goto(f"{intel_server}/server.html?entity=c01/r01/s05")  # its rack's incident closed
    quiet.page.wait_for_selector("#incidents .incidents-empty")
    assert text(quiet, "#incidents") == "No open incident on this server."
    # this room runs no fan controller: the page's fan cards are refused (503), nothing else
    tab.assert_no_errors(allow=NO_FAN_CONTROL)
    quiet.assert_no_errors(allow=NO_FAN_CONTROL)
