"""Alert lifecycle: fire → acknowledge → resolve, dedup per (rule, entity), cooldown, history."""

from __future__ import annotations

import pytest

from rackwatch.engine.alerts.lifecycle import AlertBook, AlertNotFound, AlertStatus, alert_id
from rackwatch.engine.alerts.rules import Rule, Transition
from rackwatch.model import EventKind, Severity

W, C = Severity.WARNING, Severity.CRITICAL
RULE = Rule("cpu", "cpu_temperature_celsius", warning=75, critical=85, summary="CPU hot")
S1, S2 = "c01/r01/s01", "c01/r01/s02"


def tr(ts_s: float, level: Severity | None, entity: str = S1, value: float = 80.0) -> Transition:
    threshold = {None: 75.0, W: 75.0, C: 85.0}[level]
    return Transition(RULE, entity, int(ts_s * 1000), level, None, value, threshold)


def test_fire_acknowledge_resolve() -> None:
    book = AlertBook()
    fired = book.apply(tr(0, W))
    assert fired is not None and fired.kind is EventKind.ALERT_FIRED and fired.is_notified
    alert = fired.alert
    assert alert.status is AlertStatus.FIRING and alert.id == alert_id("cpu", S1, 0)
    assert [a.id for a in book.open_alerts()] == [alert.id]

    acked = book.acknowledge(alert.id, "alice", 10_000)
    assert acked is not None and acked.kind is EventKind.ALERT_ACKNOWLEDGED
    assert not acked.is_notified
    event = acked.event()
    assert (event.ts, event.attributes["by"], event.severity) == (10_000, "alice", Severity.INFO)
    assert book.acknowledge(alert.id, "bob", 11_000) is None  # idempotent
    open_alert = book.get(alert.id)
    assert open_alert is not None and open_alert.status is AlertStatus.ACKNOWLEDGED
    assert open_alert.acknowledged_by == "alice"

    resolved = book.apply(tr(60, None, value=70))
    assert resolved is not None and resolved.kind is EventKind.ALERT_RESOLVED
    assert resolved.is_notified  # its firing was notified
    event = resolved.event()
    assert event.attributes["duration_s"] == 60 and event.severity is Severity.INFO
    assert book.open_alerts() == []
    with pytest.raises(AlertNotFound, match="may have resolved"):
        book.acknowledge(alert.id, "alice", 70_000)


def test_one_alert_per_rule_and_entity_escalates_and_deescalates() -> None:
    book = AlertBook()
    first = book.apply(tr(0, W))
    other = book.apply(tr(0, W, entity=S2))
    assert first is not None and other is not None and first.alert.id != other.alert.id
    up = book.apply(tr(5, C, value=90))
    assert up is not None and up.kind is EventKind.ALERT_ESCALATED and up.is_notified
    assert up.alert.id == first.alert.id and up.alert.severity is C
    down = book.apply(tr(10, W, value=80))
    assert down is None  # quieter: no event, the alert just shows the lower level
    alert = book.get(first.alert.id)
    assert alert is not None and alert.severity is W and alert.value == 80
    again = book.apply(tr(15, C, value=91))
    assert again is not None and again.kind is EventKind.ALERT_ESCALATED
    assert not again.is_notified  # CRITICAL was already told
    assert len(book.open_alerts()) == 2


def test_refire_within_cooldown_reopens_quietly_after_it_a_new_alert_notifies() -> None:
    book = AlertBook(cooldown_ms=300_000)
    first = book.apply(tr(0, W))
    assert first is not None
    book.apply(tr(10, None))
    reopened = book.apply(tr(100, W))  # 90 s after the resolve: within the cooldown
    assert reopened is not None and reopened.kind is EventKind.ALERT_FIRED
    assert not reopened.is_notified and reopened.is_reopened
    assert reopened.alert.id == first.alert.id and reopened.alert.n_reopened == 1
    assert reopened.event().attributes["reopened"] is True
    quiet = book.apply(tr(110, None))
    assert quiet is not None and not quiet.is_notified  # its firing was not told either
    worse = book.apply(tr(120, C))  # back within the cooldown, but worse than ever told
    assert worse is not None and worse.is_notified
    book.apply(tr(130, None))
    fresh = book.apply(tr(130 + 300, W))  # calm for the whole cooldown: a new alert
    assert fresh is not None and fresh.is_notified and not fresh.is_reopened
    assert fresh.alert.id != first.alert.id


def test_zero_cooldown_never_reopens() -> None:
    book = AlertBook(cooldown_ms=0)
    book.apply(tr(0, W))
    book.apply(tr(5, None))
    again = book.apply(tr(5, W))
    assert again is not None and again.is_notified and not again.is_reopened


def test_suppressed_alerts_are_recorded_but_never_notified() -> None:
    book = AlertBook()
    fired = book.apply(tr(0, C), is_suppressed=True)
    assert fired is not None and not fired.is_notified and fired.alert.is_suppressed
    assert fired.event().attributes["is_suppressed"] is True
    resolved = book.apply(tr(5, None))
    assert resolved is not None and not resolved.is_notified


def test_recent_gives_seed_shaped_occurrences_after_a_timestamp() -> None:
    book = AlertBook(history=3)
    book.apply(tr(0, W))
    book.apply(tr(5, C, value=86.5))
    book.apply(tr(10, None, value=70))
    recent = book.recent(0)
    assert [(r["ts_ms"], r["level"], r["status"]) for r in recent] == [
        (5000, "CRITICAL", "firing"),
        (10_000, "CRITICAL", "resolved"),
    ]
    item = recent[0]
    assert item["timestamp"] == "1970-01-01T00:00:05.000Z"
    assert {"entity", "metric", "value", "threshold", "level", "message"} <= set(item)
    assert (item["value"], item["threshold"], item["metric"]) == (86.5, 85.0, RULE.metric)
    book.apply(tr(20, W))
    assert len(book.recent(-1)) == 3  # bounded history


def test_acknowledge_needs_a_name() -> None:
    book = AlertBook()
    fired = book.apply(tr(0, W))
    assert fired is not None
    with pytest.raises(ValueError, match="who"):
        book.acknowledge(fired.alert.id, " ", 1)
