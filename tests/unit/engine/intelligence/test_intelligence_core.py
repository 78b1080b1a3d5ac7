"""The intelligence's synchronous core on short twin runs (no bus): which series it scores,
the anomaly events of a stopped fan, load bursts explained, a wearing fan's prediction, and
the health it feeds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rackwatch.engine.alerts.lifecycle import Alert, AlertStatus
from rackwatch.engine.intelligence import (
    FanPrediction,
    IntelligenceConfig,
    IntelligenceCore,
    Role,
    role_of,
)
from rackwatch.engine.intelligence.healthview import health_now
from rackwatch.engine.intelligence.roles import Moves, SeriesRoles
from rackwatch.engine.states import DeviceState
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry, Severity
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

START_MS = 1_767_225_600_000
STEP_MS = 5000


def run(
    scenario: str, minutes: float, block: int = 12, **twin_kw: object
) -> tuple[IntelligenceCore, list[Event], Twin]:
    registry = SeriesRegistry()
    twin = Twin.from_scenario(scenario, seed=4, start_ms=START_MS, **twin_kw)  # type: ignore[arg-type]
    source = TwinSource(twin, registry)
    core = IntelligenceCore(registry, IntelligenceConfig())
    events: list[Event] = []
    for _ in range(int(minutes * 12 / block)):
        batch, _faults = source.read(block)
        events += core.process(batch, "twin")
    return core, events, twin


def at_min(ts: int) -> float:
    return (ts - START_MS) / 60_000


@pytest.mark.parametrize(
    ("metric", "role"),
    [
        ("cpu_temperature_celsius", Role.SCORED),
        ("fan_rpm", Role.SCORED),
        ("inlet_temperature_celsius", Role.SCORED),
        ("memory_used_bytes", Role.SCORED),
        ("some_exporter_gauge", Role.SCORED),
        ("cpu_utilization_ratio", Role.LOAD),
        ("fan_level", Role.COMMAND),
        ("disk_ok", Role.IGNORED),  # a state
        ("network_receive_bytes_total", Role.IGNORED),  # a counter
        ("http_server_requests_seconds_count", Role.IGNORED),  # a scraped counter
        ("uptime_seconds", Role.IGNORED),  # grows, then resets
        ("fan_power_watts", Role.IGNORED),  # set and quantised by the level
        ("health_score", Role.IGNORED),  # rackwatch's own
    ],
)
def test_roles_score_what_says_something_about_the_device(metric: str, role: Role) -> None:
    assert role_of(metric) is role


def test_a_follower_is_explained_within_its_scope() -> None:
    registry = SeriesRegistry()
    ids = {
        (e, m): registry.intern(e, m)
        for e, m in [
            ("c01/r01/s01", "cpu_utilization_ratio"),
            ("c01/r01/s01", "cpu_temperature_celsius"),
            ("c01/r01/s01", "inlet_temperature_celsius"),
            ("c01/r01/s01/fan1", "fan_rpm"),
            ("c01/r01/pdu", "pdu_power_watts"),
            ("room", "it_power_watts"),
            ("room/crac1", "crac_supply_temperature_celsius"),
        ]
    }
    roles = SeriesRoles(registry)
    assert roles.follow()
    scope = {key: roles.scope(sid) for key, sid in ids.items()}
    assert scope[("c01/r01/s01", "cpu_temperature_celsius")] == "c01/r01/s01"
    assert scope[("c01/r01/s01", "inlet_temperature_celsius")] == "c01/r01"  # the rack's air
    assert scope[("c01/r01/s01/fan1", "fan_rpm")] == "c01/r01/s01/fan1"  # its own level
    assert scope[("c01/r01/pdu", "pdu_power_watts")] == "c01/r01"
    assert scope[("room", "it_power_watts")] == ""  # every driver
    assert scope[("room/crac1", "crac_supply_temperature_celsius")] is None  # not a follower
    assert scope[("c01/r01/s01", "cpu_utilization_ratio")] is None

    moves = Moves(window_ms=600_000)
    moves.record("c01/r01/s02", START_MS)
    assert moves.explains("c01/r01", START_MS + 60_000)  # a neighbour's load, for the rack
    assert moves.explains("", START_MS + 60_000)
    assert not moves.explains("c01/r01/s01", START_MS + 60_000)  # another server's
    assert not moves.explains("c01/r01", START_MS + 700_000)  # too long ago
    assert not moves.explains("c01/r01", START_MS - 5000)  # a move after the start
    assert not moves.explains("c01/r01", START_MS + 60_000, window_ms=30_000)


def test_a_stopped_fan_starts_an_anomaly_and_a_failed_prediction() -> None:
    core, events, _twin = run("fan-fail", minutes=40)  # s03/fan1 stops at 30 min
    started = [e for e in events if e.kind == EventKind.ANOMALY_STARTED]
    fan = [e for e in started if e.entity == "c01/r01/s03/fan1"]
    assert fan and fan[0].attributes["metric"] == "fan_rpm"
    assert 30 <= at_min(fan[0].ts) <= 31
    a = fan[0].attributes
    assert a["score"] >= 0.9 and a["peak"] >= a["score"] and a["start"] == fan[0].ts
    assert a["detector"] in ("deviation", "stuck") and a["z"] is not None
    assert fan[0].severity is Severity.WARNING
    # nothing else of s03 or its neighbours is flagged before the fault
    assert all(at_min(e.ts) >= 30 for e in started if e.entity.startswith("c01/r01/s"))
    predicted = [e for e in events if e.kind == EventKind.PREDICTION_FAN_FAILURE]
    assert [e.entity for e in predicted] == ["c01/r01/s03/fan1"]
    assert predicted[0].attributes["eta_s"] == 0 and predicted[0].severity is Severity.CRITICAL
    assert 30 <= at_min(predicted[0].ts) <= 33
    snap = core.snapshot()
    assert "c01/r01/s03/fan1" in snap.anomaly_scores
    assert snap.clocks == {"twin": START_MS + (40 * 12 - 1) * STEP_MS}
    assert snap.source_of["c01/r01/s03/fan1"] == "twin" and snap.source_of["room"] == "twin"
    assert snap.stats.n_events == len(events) and snap.stats.n_scored > 0


def test_load_bursts_are_explained_not_reported() -> None:
    registry = SeriesRegistry()
    twin = Twin.from_scenario("small", seed=2, start_ms=START_MS)
    source = TwinSource(twin, registry)
    core = IntelligenceCore(registry, IntelligenceConfig())
    events = []
    for step in range(90):
        if step == 20:  # 90 % load for 10 min on every server, at 20 min
            twin.inject("load_burst", "c01", {"n_servers": 5, "duration_s": 600.0})
        events += core.process(source.read(12)[0], "twin")
    server_starts = [
        e
        for e in events
        if e.kind == EventKind.ANOMALY_STARTED
        and e.attributes["metric"] in ("cpu_temperature_celsius", "power_watts")
    ]
    assert core.anomalies.n_explained >= 5  # power and temperature of the servers under load
    assert server_starts == []
    ends = [e for e in events if e.kind == EventKind.ANOMALY_ENDED]
    starts = [e for e in events if e.kind == EventKind.ANOMALY_STARTED]
    assert len(ends) <= len(starts)  # an explained anomaly's end is not published either


def test_without_explanations_the_same_burst_is_reported() -> None:
    registry = SeriesRegistry()
    twin = Twin.from_scenario("small", seed=2, start_ms=START_MS)
    source = TwinSource(twin, registry)
    core = IntelligenceCore(registry, IntelligenceConfig(explain_window_s=0))
    events = []
    for step in range(90):
        if step == 20:
            twin.inject("load_burst", "c01", {"n_servers": 5, "duration_s": 600.0})
        events += core.process(source.read(12)[0], "twin")
    assert core.anomalies.n_explained == 0
    metrics = {e.attributes["metric"] for e in events if e.kind == EventKind.ANOMALY_STARTED}
    assert metrics & {"cpu_temperature_celsius", "power_watts", "chassis_temperature_celsius"}


def test_a_wearing_fan_is_predicted_long_before_it_stops() -> None:
    _core, events, _twin = run("burst-fan-degradation", minutes=120)
    wear_stop_ms = START_MS + int((0.5 + 15.0) * 3_600_000)  # -2 % / 30 min from 30 min
    predicted = [e for e in events if e.kind == EventKind.PREDICTION_FAN_FAILURE]
    assert predicted and {e.entity for e in predicted} == {"c01/r02/s05/fan2"}
    first = predicted[0]
    assert at_min(first.ts) < 90  # within an hour of the wear's start
    a = first.attributes
    assert a["eta_s"] > 10 * 3600 and a["low_s"] <= a["eta_s"]
    assert abs(a["failure_ms"] - (first.ts + a["eta_s"] * 1000)) <= 100  # eta rounded to 0.1 s
    last = predicted[-1].attributes
    assert last["failure_low_ms"] <= wear_stop_ms <= (last["failure_high_ms"] or 2**62)
    assert all(e.kind != EventKind.PREDICTION_CLEARED for e in events)


def alert(entity: str, severity: Severity, *, is_failure: bool = False) -> Alert:
    return Alert(
        id="a1",
        rule="fan-stopped" if is_failure else "cpu-temperature",
        entity=entity,
        metric="fan_rpm",
        unit="rpm",
        severity=severity,
        status=AlertStatus.FIRING,
        fired_ts=START_MS,
        ts=START_MS,
        value=0.0,
        threshold=1.0,
        message="",
        is_failure=is_failure,
    )


def test_the_health_counts_alerts_anomalies_and_predictions_on_each_sources_clock() -> None:
    core, _events, _twin = run("small", minutes=10)
    snap = core.snapshot()
    now = snap.clocks["twin"]
    fan = "c01/r01/s02/fan1"
    wear = FanPrediction(fan, now - 600_000, 4 * 3600.0, 3 * 3600.0, None, 0.9, 0.9)
    snap = replace(
        snap,
        predictions={fan: wear},
        anomaly_scores={"c01/r01/s04": {"cpu_temperature_celsius": 1.0}},
        clocks={**snap.clocks, "host": now + 10**9},  # another source far ahead: ignored
    )
    report = health_now(
        snap,
        [alert("c01/r01/s01", Severity.WARNING)],
        {"c01/r01/s05": DeviceState.UNKNOWN},
    ).entities
    assert report["c01/r01/s01"].score == pytest.approx(70.0)  # a warning
    assert report["c01/r01/s04"].score == pytest.approx(60.0)  # anomaly score 1: 40 points
    assert report["c01/r01/s05"].score == pytest.approx(70.0)  # unknown
    nf = report["c01/r01/s02"].next_failure
    assert nf is not None and nf.entity == fan
    assert nf.eta_s == pytest.approx(4 * 3600.0 - 600.0)  # counted down on the twin's clock
    assert nf.low_s == pytest.approx(3 * 3600.0 - 600.0) and nf.high_s is None
    assert report["room"].next_failure == nf and report["c01/r01"].n_members == 6
    assert report["room"].score < report["c01/r01/s03"].score == 100.0
    assert report["c01/r01/s02"].predicted_score < report["c01/r01/s02"].score

    # a stopped fan whose failure alert is open counts once (the alert), not twice
    stopped = replace(wear, eta_s=0.0, low_s=0.0, high_s=0.0)
    failed = health_now(
        replace(snap, predictions={fan: stopped}),
        [alert(fan, Severity.CRITICAL, is_failure=True)],
        {},
    ).entities
    assert failed[fan].score == pytest.approx(20.0) and failed[fan].next_failure is None


def test_anomalies_do_not_depend_on_how_the_stream_is_cut() -> None:
    """Coalesced batches (the consumer behind) give the same anomaly events as one step at a
    time; a fan prediction comes with the first batch after its minute closed, so later."""

    def anomalies(events: list[Event]) -> list[tuple[object, ...]]:
        return [
            (e.ts, e.kind, e.entity, e.attributes["metric"], e.attributes["start"])
            for e in events
            if e.kind in (EventKind.ANOMALY_STARTED, EventKind.ANOMALY_ENDED)
        ]

    _a, one_by_one, _ = run("fan-fail", minutes=35, block=1)
    _b, coalesced, _ = run("fan-fail", minutes=35, block=60)
    assert anomalies(one_by_one) == anomalies(coalesced) != []
    first = [e.ts for e in one_by_one if e.kind == EventKind.PREDICTION_FAN_FAILURE]
    later = [e.ts for e in coalesced if e.kind == EventKind.PREDICTION_FAN_FAILURE]
    assert len(first) == len(later) == 1 and 0 <= later[0] - first[0] <= 5 * 60_000


def test_a_new_fan_later_gets_its_own_tracker() -> None:
    registry = SeriesRegistry()
    core = IntelligenceCore(registry, IntelligenceConfig())
    a = registry.intern("host/a/fan-x", "fan_rpm")
    core.process(Batch.of([START_MS], [a], [1000.0]), "agent")
    b = registry.intern("host/b/fan-y", "fan_rpm")
    core.process(Batch.of([START_MS + 5000] * 2, [a, b], [1000.0, 2000.0]), "agent")
    assert core.fans.fans == ["host/a/fan-x", "host/b/fan-y"]
    assert [g.n for g in core.fans._groups] == [1, 1]
    assert np.isnan(core.fans._groups[0].level_now).all()  # no commanded level: own reference


def test_a_drift_outlives_a_retrained_model() -> None:
    """The retrainer swaps the model every 3 h, sooner than a slow drift is called: the drift
    levels carry over, so an open drift incident stays open through the swap."""
    from rackwatch.engine.evaluation.grid import RunSpec
    from rackwatch.engine.evaluation.runner import drive, learned_model
    from rackwatch.twin import ScheduledFault

    drift = ScheduledFault("sensor_drift", "c01/r01/s04", 1800.0, {"slope_per_hour": 0.2})
    spec = RunSpec("test", "catalogue", "small", 7, 7 * 3600.0, (drift,))
    registry = SeriesRegistry()
    core = IntelligenceCore(registry, IntelligenceConfig())
    core.use_model(learned_model(spec, 3.0), "v1", spec.start_ms)
    twin = Twin("small", seed=7, start_ms=spec.start_ms, faults=spec.faults)
    events: list[Event] = []
    swapped_at: list[int] = []
    scores_after: list[float] = []

    def score(batch: Batch) -> None:
        events.extend(core.process(batch, "twin"))
        if swapped_at:
            scores_after.extend(a.score for a in core.anomalies.open_drift.values())
        called = any(
            e.kind == EventKind.INCIDENT_OPENED and e.attributes["cause"] == "sensor_drift"
            for e in events
        )
        if called and not swapped_at:
            swapped_at.append(int(batch.ts.max()))
            core.use_model(learned_model(spec, 3.0), "v2", swapped_at[0])

    drive(twin, registry, spec.n_steps, score)
    assert swapped_at, "the drift was never called"
    after = [e for e in events if e.ts > swapped_at[0]]
    drift_ended = [
        e
        for e in after
        if e.kind == EventKind.ANOMALY_ENDED and e.attributes["detector"] == "drift"
    ]
    assert drift_ended == []
    assert not [
        e
        for e in after
        if e.kind == EventKind.ANOMALY_STARTED and e.attributes["detector"] == "drift"
    ]
    assert len(scores_after) >= 30 and min(scores_after) >= 0.5  # the level went on
    assert not [e for e in after if e.kind == EventKind.INCIDENT_CLOSED]
    assert core.model is not None and core.model.version == "v2"


def test_a_gpu_job_held_for_hours_stays_explained() -> None:
    """A job's card power sits off its old level for hours and its score wanders round the
    start threshold: a new crossing that is no new high is no new fault."""
    core, events, _twin = run("gpu-fleet", minutes=4 * 60, block=60)
    published = [
        e.entity
        for e in events
        if e.kind == EventKind.ANOMALY_STARTED and e.attributes["metric"] == "gpu_power_watts"
    ]
    assert core.anomalies.n_explained > 50  # every job start moved its cards' power
    assert len(published) <= 1, published
