"""A front end's view of the alert workers' events: open alerts, states, usage, and the same
after a restart from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rackwatch.engine.alerts.site import IMPLIED_OK, AckTimeout, SiteAlerts
from rackwatch.engine.states import DeviceState, UsageStatus
from rackwatch.model import Command, Event, SeriesRegistry, Severity
from rackwatch.store.duckdb import DuckDBStore

FAN = "c01/r01/s03/fan1"
SERVER = "c01/r01/s03"


def alert(ts: int, kind: str, level: str = "CRITICAL", **more: object) -> Event:
    attributes = {
        "alert_id": "a1",
        "rule": "fan-stopped",
        "metric": "fan_rpm",
        "level": level,
        "fired_ts": 1000,
        "message": "fan stopped",
        "value": 0.0,
        **more,
    }
    return Event(ts, kind, FAN, Severity.CRITICAL, attributes)


def state(ts: int, entity: str, to: str, **more: object) -> Event:
    return Event(ts, "state.changed", entity, attributes={"from": "ok", "to": to, **more})


STORY = [
    alert(1000, "alert.fired"),
    state(1000, FAN, "failed", reason="fan stopped"),
    Event(1000, "usage.changed", SERVER, attributes={"from": None, "to": "busy"}),
    Event(1500, "fault.injected", FAN),  # says nothing here
    alert(2000, "alert.acknowledged", by="alice"),
]


def test_the_events_make_the_open_alerts_and_the_states() -> None:
    site = SiteAlerts({"fan-stopped"}, heard=lambda: frozenset({SERVER, FAN, "c01/r01/s01"}))
    site.fold(STORY)
    [open_alert] = site.open_alert_dicts()
    assert (open_alert["status"], open_alert["acknowledged_by"]) == ("acknowledged", "alice")
    assert open_alert["is_failure"] is True
    assert [a["status"] for a in site.recent_alerts(0)] == ["firing", "acknowledged"]
    assert site.recent_alerts(1000) == site.recent_alerts(0)[1:]
    assert site.states() == {
        "c01/r01/s01": DeviceState.OK,
        SERVER: DeviceState.OK,
        FAN: DeviceState.FAILED,
    }
    rollups = site.rollups()
    assert (rollups[SERVER].rollup_state, rollups[SERVER].rollup_from) == (
        DeviceState.FAILED,
        FAN,
    )
    assert (rollups["c01/r01"].state, rollups["c01/r01"].n_critical) == (None, 1)
    assert site.state_details(FAN) is not None
    assert site.state_details(FAN)["since_ts_ms"] == 1000  # type: ignore[index]
    assert site.state_details(SERVER)["reason"] == IMPLIED_OK  # type: ignore[index]
    assert site.state_details("c09/r09/s09") is None
    assert site.usage() == {SERVER: UsageStatus.BUSY}
    assert site.n_events == 4

    site.fold([alert(3000, "alert.resolved"), state(3000, FAN, "ok", reason="")])
    assert site.open_alert_dicts() == []
    assert site.rollups()[SERVER].rollup_state is DeviceState.OK


def test_maintenance_comes_with_who_and_why_and_bad_events_are_skipped() -> None:
    site = SiteAlerts()
    site.fold(
        [
            state(5000, SERVER, "maintenance", reason="disk swap", by="bob"),
            state(6000, FAN, "sideways"),  # no such state
            Event(6000, "usage.changed", SERVER, attributes={"to": 7}),
            Event(6000, "alert.fired", FAN, attributes={"rule": "x"}),  # no alert id
        ]
    )
    found = site.maintenance_of(SERVER)
    assert found is not None and (found.by, found.reason, found.since_ts) == (
        "bob",
        "disk swap",
        5000,
    )
    assert site.maintenance_of(FAN) is None
    assert site.states() == {SERVER: DeviceState.MAINTENANCE}
    assert site.open_alert_dicts() == [] and site.usage() == {}


def test_a_front_end_started_later_reads_the_same_back_from_the_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "db", SeriesRegistry())
    try:
        store.write_events(STORY)
        site = SiteAlerts()
        read = site.seed(store, now_ms=10_000)
        assert [e.ts for e in read] == sorted(e.ts for e in read) and len(read) == 4
        [open_alert] = site.open_alert_dicts()
        assert open_alert["status"] == "acknowledged"
        assert site.states() == {FAN: DeviceState.FAILED}
        assert site.usage() == {SERVER: UsageStatus.BUSY}
    finally:
        store.close()


def test_an_acknowledgement_goes_to_the_workers_and_waits_for_their_event() -> None:
    site = SiteAlerts()
    site.fold(STORY[:2])  # firing
    sent: list[tuple[str, Command]] = []

    async def worker_confirms(subject: str, command: Command) -> None:
        sent.append((subject, command))
        await asyncio.sleep(0.05)  # the worker's event comes back a little later
        site.fold([alert(2000, "alert.acknowledged", by=command.issued_by)])

    site.publish = worker_confirms
    done, not_found = asyncio.run(site.acknowledge_many(["a1", "nope", "a1"], "alice"))
    assert [(a["id"], a["status"], a["acknowledged_by"]) for a in done] == [
        ("a1", "acknowledged", "alice")
    ]
    assert not_found == ["nope"]
    [(subject, command)] = sent
    assert (subject, command.action, dict(command.params)) == (
        "commands.alerts",
        "alert.acknowledge",
        {"ids": ["a1"]},
    )
    # Again: already acknowledged, nothing sent.
    asyncio.run(site.acknowledge_many(["a1"], "bob"))
    assert len(sent) == 1


def test_no_confirmation_in_time_is_a_clear_error() -> None:
    site = SiteAlerts()
    site.fold(STORY[:2])

    async def nobody_listens(_subject: str, _command: Command) -> None:
        return None

    site.publish = nobody_listens
    with pytest.raises(AckTimeout, match="rackwatch worker --role alerts"):
        asyncio.run(site.acknowledge_many(["a1"], "alice", wait_s=0.1))


def test_resolved_alerts_are_not_kept_beyond_the_recent_history() -> None:
    # A front end runs for months: what it holds must not grow with every alert ever fired.
    site = SiteAlerts(history=50)
    for n in range(2000):
        fired = alert(10 * n, "alert.fired", alert_id=f"a{n}")
        site.fold([fired, alert(10 * n + 5, "alert.resolved", alert_id=f"a{n}")])
    assert site.open_alert_dicts() == []
    assert len(site.recent_alerts(0)) == 50
    assert len(site._alerts.alerts) == 0  # the fold's memory, not only the view
    site.fold([alert(99_999, "alert.fired", alert_id="a7", reopened=True, n_reopened=1)])
    [again] = site.open_alert_dicts()
    assert (again["id"], again["n_reopened"]) == ("a7", 1)
