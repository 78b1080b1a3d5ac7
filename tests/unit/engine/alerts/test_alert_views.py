"""Views of alerts (issue 8, item 14): the history rebuilt from stored `alert.*` events, the
live engine laid over it, grouping by rule, and acknowledging many alerts at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.alerts.lifecycle import AlertBook, AlertChange
from rackwatch.engine.alerts.rules import Rule, Transition
from rackwatch.engine.alerts.views import (
    AlertHistory,
    HistoryTooLarge,
    group_by_rule,
    newest_fired_first,
    overlaps,
    with_engine,
)
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry, Severity

W, C = Severity.WARNING, Severity.CRITICAL
CPU_RULE = Rule("cpu", "cpu_temperature_celsius", warning=75, critical=85)
FAN_RULE = Rule("fan-stopped", "fan_rpm", op="<", critical=100, is_failure=True)
S1, S2, FAN = "c01/r01/s01", "c01/r01/s02", "c01/r01/s01/fan1"


def tr(rule: Rule, ts_s: float, level: Severity | None, entity: str, value: float) -> Transition:
    threshold = {None: 75.0, W: 75.0, C: 85.0}[level]
    return Transition(rule, entity, int(ts_s * 1000), level, None, value, threshold)


def lifecycle() -> tuple[AlertBook, list[Event]]:
    """S1: fired, escalated, acknowledged, resolved. S2: fired, resolved, reopened within
    the cooldown. FAN: fired (a failure), still open."""
    book = AlertBook(cooldown_ms=300_000)
    changes: list[AlertChange | None] = [
        book.apply(tr(CPU_RULE, 0, W, S1, 76)),
        book.apply(tr(CPU_RULE, 5, W, S2, 77)),
        book.apply(tr(CPU_RULE, 10, C, S1, 86)),
    ]
    changes.append(book.acknowledge(book.open_alerts()[0].id, "ops (token c8c734d04242)", 20_000))
    changes += [
        book.apply(tr(CPU_RULE, 30, None, S2, 70)),
        book.apply(tr(FAN_RULE, 40, C, FAN, 0)),
        book.apply(tr(CPU_RULE, 60, None, S1, 70)),
        book.apply(tr(CPU_RULE, 100, W, S2, 78)),
    ]
    return book, [c.event() for c in changes if c is not None]


def test_the_history_rebuilds_what_the_engine_shows() -> None:
    book, events = lifecycle()
    history = AlertHistory()
    history.add(events[:4])  # in two reads, oldest first, as read_history does
    history.add(events[4:])
    rebuilt = history.alerts
    resolved = {o["id"]: o for o in book.recent(-1)}  # the engine's own last word per id
    open_now = {a.id: a.as_dict() for a in book.open_alerts()}
    assert set(rebuilt) == set(resolved) | set(open_now)
    for alert_id, alert in rebuilt.items():
        assert alert == open_now.get(alert_id, resolved[alert_id]), alert["entity"]
    by_entity = {a["entity"]: a for a in rebuilt.values()}
    assert by_entity[S1]["status"] == "resolved"
    assert by_entity[S1]["acknowledged_by"] == "ops (token c8c734d04242)"
    assert (by_entity[S1]["level"], by_entity[S1]["resolved_ts_ms"]) == ("CRITICAL", 60_000)
    assert (by_entity[S2]["status"], by_entity[S2]["n_reopened"]) == ("firing", 1)
    assert by_entity[S2]["fired_ts_ms"] == 5_000  # a reopened alert keeps its first fire time
    assert by_entity[FAN]["is_failure"] is True


def test_an_alert_whose_first_events_lie_before_the_range_is_rebuilt_from_the_rest() -> None:
    _, events = lifecycle()
    resolved_s1 = [e for e in events if e.entity == S1 and e.kind == EventKind.ALERT_RESOLVED]
    history = AlertHistory()
    history.add(resolved_s1)
    [alert] = history.alerts.values()
    assert (alert["status"], alert["fired_ts_ms"], alert["resolved_ts_ms"]) == (
        "resolved",
        0,
        60_000,
    )
    assert alert["acknowledged_by"] is None  # the acknowledgement was before the range


def test_old_events_without_is_failure_take_it_from_the_rules() -> None:
    _, events = lifecycle()
    [fan] = [e for e in events if e.entity == FAN]
    attributes = {k: v for k, v in fan.attributes.items() if k not in ("is_failure", "n_reopened")}
    old = Event(fan.ts, fan.kind, fan.entity, fan.severity, attributes)
    without = AlertHistory()
    without.add([old])
    assert next(iter(without.alerts.values()))["is_failure"] is False
    told = AlertHistory({"fan-stopped"})
    told.add([old])
    assert next(iter(told.alerts.values()))["is_failure"] is True


def test_damaged_events_are_skipped_or_read_with_defaults_never_raise() -> None:
    _, events = lifecycle()
    good = events[0]
    damaged = [
        Event(1, EventKind.ALERT_FIRED, S1, Severity.WARNING, {"rule": "cpu"}),  # no id
        Event(2, EventKind.ALERT_FIRED, S1, Severity.WARNING, {"alert_id": 7}),  # not a str
        Event(3, EventKind.FAULT_INJECTED, S1, Severity.WARNING, {"alert_id": "x"}),
        Event(
            4,
            EventKind.ALERT_FIRED,
            S2,
            Severity.WARNING,
            {"alert_id": "y", "level": "HUGE", "value": "hot", "fired_ts": True},
        ),
    ]
    history = AlertHistory()
    history.add([good, *damaged])
    assert set(history.alerts) == {good.attributes["alert_id"], "y"}
    odd = history.alerts["y"]
    assert (odd["level"], odd["value"], odd["fired_ts_ms"]) == ("WARNING", None, 4)


def test_a_range_with_too_many_events_is_refused() -> None:
    _, events = lifecycle()
    history = AlertHistory(max_events=len(events) - 1)
    with pytest.raises(HistoryTooLarge, match="narrow it"):
        history.add(events)


def test_the_engine_view_is_fresher_and_a_run_that_stopped_left_nothing_open() -> None:
    _, events = lifecycle()
    history = AlertHistory()
    history.add(events)
    stored = history.alerts
    fan_id = next(i for i, a in stored.items() if a["entity"] == FAN)
    s2_id = next(i for i, a in stored.items() if a["entity"] == S2)
    # After a restart the engine holds none of them: what the store says is open is not.
    merged = with_engine(stored, {}, set())
    assert merged[fan_id]["status"] == "resolved" and merged[fan_id]["resolved_ts_ms"] is None
    assert stored[fan_id]["status"] == "firing"  # the stored view itself is not changed
    assert merged[s2_id]["status"] == "resolved"
    # The engine that raised them: its view wins, and still-open ones stay open.
    fresher = {**stored[fan_id], "level": "WARNING", "value": 50.0}
    known = {fan_id: fresher, s2_id: stored[s2_id]}
    merged = with_engine(stored, known, {fan_id, s2_id})
    assert merged[fan_id] == fresher and merged[s2_id]["status"] == "firing"
    only_s2 = with_engine({}, known, {fan_id, s2_id}, entity=f"{S2}/**")
    assert list(only_s2) == [s2_id]  # the engine's alerts follow the entity glob too


def test_overlap_with_a_range_and_newest_fired_first() -> None:
    _, events = lifecycle()
    history = AlertHistory()
    history.add(events)
    alerts = list(history.alerts.values())
    entities = [a["entity"] for a in newest_fired_first(alerts)]
    assert entities == [FAN, S2, S1]  # fired at 40 s, 5 s, 0 s
    s1 = next(a for a in alerts if a["entity"] == S1)  # open from 0 s to 60 s
    assert overlaps(s1, 0, 1) and overlaps(s1, 60_000, 70_000)
    assert not overlaps(s1, 60_001, 70_000) and not overlaps(s1, -10, 0)
    unknown_end = {**s1, "resolved_ts_ms": None}  # resolved when, we do not know
    assert overlaps(unknown_end, 60_000, 70_000) and not overlaps(unknown_end, 60_001, 70_000)


def _alert(rule: str, level: str, entity: str, fired: int) -> dict[str, Any]:
    return {"rule": rule, "level": level, "entity": entity, "fired_ts_ms": fired}


def test_a_room_wide_fault_is_one_group_with_a_count() -> None:
    servers = [f"c01/r01/s{i:02d}" for i in range(1, 16)]
    alerts = [
        _alert("inlet-temperature-high", "WARNING", s, 100 + i) for i, s in enumerate(servers)
    ]
    alerts[7]["level"] = "CRITICAL"
    alerts.append(_alert("disk-failed", "CRITICAL", servers[3], 50))
    alerts.append(_alert("cpu-temperature", "WARNING", servers[0], 10))
    alerts.append(_alert("cpu-temperature", "WARNING", servers[0], 20))  # same entity twice
    groups = group_by_rule(alerts)
    assert [(g["rule"], g["level"], g["count"]) for g in groups] == [
        ("inlet-temperature-high", "CRITICAL", 15),  # most severe, then largest, then name
        ("disk-failed", "CRITICAL", 1),
        ("cpu-temperature", "WARNING", 2),
    ]
    assert groups[0]["entities"] == servers[:10]
    assert groups[0]["oldest_fired_ts_ms"] == 100
    assert groups[2]["entities"] == [servers[0]]


def test_acknowledge_many_sends_one_event_per_alert_newly_acknowledged() -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    engine = AlertEngine(bus, reg, [CPU_RULE], clock=lambda: 0.0)
    ids = [reg.intern(f"c01/r01/s0{i}", CPU_RULE.metric) for i in (1, 2, 3)]
    engine.process(Batch.of([0, 0, 0], ids, [80, 90, 60]))
    hot = [a.id for a in engine.active_alerts()]
    assert len(hot) == 2

    async def scenario() -> tuple[list[list[str]], list[Event]]:
        seen: list[Event] = []
        async with bus.subscribe("events.>") as sub:
            first = await engine.acknowledge_many([hot[1], "0123456789abcdef", hot[1]], "ops")
            again = await engine.acknowledge_many([*hot, "nope"], "ops")
            async for _subject, event in sub:
                seen.append(event)
                if not sub.pending:
                    break
        answers = [
            [a.id for a in first.acknowledged],
            first.not_found,
            [a.id for a in again.acknowledged],
            again.not_found,
        ]
        return answers, seen

    answers, events = asyncio.run(scenario())
    assert answers == [[hot[1]], ["0123456789abcdef"], hot, ["nope"]]
    assert [(e.kind, e.attributes["alert_id"], e.attributes["by"]) for e in events] == [
        ("alert.acknowledged", hot[1], "ops"),
        ("alert.acknowledged", hot[0], "ops"),  # hot[1] was acknowledged already: no event
    ]
    assert {a.status for a in engine.active_alerts()} == {"acknowledged"}
    with pytest.raises(ValueError, match="who"):
        asyncio.run(engine.acknowledge_many(hot, " "))
