"""Views of alerts for the API: the history, rebuilt from the `alert.*` events the store keeps
(so it survives restarts), and alerts grouped by rule (a room-wide fault raises one alert
per server: a list of 15 reads better as one group of 15).

Each alert in a view has the shape of `Alert.as_dict()` (GET /alerts). The history folds each
alert's events in time order: `alert.fired` (again with `reopened`: a new episode of the same
alert), `alert.escalated`, `alert.acknowledged` (`by`), `alert.resolved`. Every event carries
the alert's rule, metric, level, value, message and first fire time, so an alert whose first
events lie before the range read is still rebuilt from those in it (what happened before,
such as an earlier acknowledgement, is not known then). Downward level changes make no event,
so a stored alert shows the level of its last event; the live engine's view, when there is
one, is fresher and replaces it (`with_engine`).

Pure, except `read_history`, which reads the store: call it from a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from rackwatch.errors import RackwatchError
from rackwatch.model import Event, EventKind
from rackwatch.model.entity import compile_pattern
from rackwatch.model.times import iso
from rackwatch.store.base import Store

ALERT_EVENT_KINDS: tuple[str, ...] = (
    str(EventKind.ALERT_FIRED),
    str(EventKind.ALERT_ESCALATED),
    str(EventKind.ALERT_ACKNOWLEDGED),
    str(EventKind.ALERT_RESOLVED),
)
_KIND_ORDER = {kind: rank for rank, kind in enumerate(ALERT_EVENT_KINDS)}
"""Within one instant: a fire before its escalation, acknowledgement and resolution."""
LEVEL_RANK = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}
DAY_MS = 86_400_000
MAX_HISTORY_EVENTS = 50_000
"""Alert events one history request may fold; a range holding more is refused."""


class HistoryTooLarge(RackwatchError, ValueError):
    """The range holds more alert events than one request may read."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _whole(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or not math.isfinite(number) else int(number)


class AlertHistory:
    """Alerts rebuilt from their lifecycle events, by id; feed events with `add`, oldest
    batches first. Events that do not describe an alert (no `alert_id`) are skipped, so a
    damaged row never breaks the view. `failure_rules` tells `is_failure` for events written
    before they carried it."""

    def __init__(
        self, failure_rules: Collection[str] = (), *, max_events: int = MAX_HISTORY_EVENTS
    ) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}
        self.n_events = 0
        self._failure_rules = frozenset(failure_rules)
        self._max_events = max_events

    def add(self, events: Iterable[Event]) -> None:
        """Fold events later than any added before (HistoryTooLarge past `max_events`)."""
        ordered = sorted(events, key=lambda e: (e.ts, _KIND_ORDER.get(str(e.kind), 9)))
        self.n_events += len(ordered)
        if self.n_events > self._max_events:
            raise HistoryTooLarge(
                f"more than {self._max_events:,} alert events in the range: "
                "narrow it (from, to) or the entity"
            )
        for event in ordered:
            self._fold(event)

    def _fold(self, event: Event) -> None:
        attrs = event.attributes
        alert_id = attrs.get("alert_id")
        kind = str(event.kind)
        if not isinstance(alert_id, str) or kind not in _KIND_ORDER:
            return
        current = self.alerts.get(alert_id)
        rule = str(attrs.get("rule", "" if current is None else current["rule"]))
        level = attrs.get("level")
        if level not in LEVEL_RANK:
            level = "WARNING" if current is None else current["level"]
        fired = _whole(attrs.get("fired_ts"))
        is_failure = attrs.get("is_failure")
        alert: dict[str, Any] = {
            "id": alert_id,
            "timestamp": iso(event.ts),
            "ts_ms": event.ts,
            "entity": event.entity,
            "rule": rule,
            "metric": str(attrs.get("metric", "")),
            "unit": str(attrs.get("unit", "")),
            "value": _number(attrs.get("value")),
            "threshold": _number(attrs.get("threshold")),
            "level": level,
            "status": "firing",
            "message": str(attrs.get("message", "")),
            "fired_ts_ms": fired if fired is not None else event.ts,
            "acknowledged_by": None,
            "acknowledged_ts_ms": None,
            "resolved_ts_ms": None,
            "is_failure": bool(is_failure)
            if isinstance(is_failure, bool)
            else rule in self._failure_rules,
            "is_suppressed": attrs.get("is_suppressed") is True,
            "n_reopened": 0,
        }
        if current is not None and kind != EventKind.ALERT_FIRED:
            for carried in ("status", "acknowledged_by", "acknowledged_ts_ms", "n_reopened"):
                alert[carried] = current[carried]
        if kind == EventKind.ALERT_FIRED and attrs.get("reopened") is True:
            alert["n_reopened"] = 1 if current is None else current["n_reopened"] + 1
        elif kind == EventKind.ALERT_ACKNOWLEDGED:
            by = attrs.get("by")
            alert["status"] = "acknowledged"
            alert["acknowledged_by"] = str(by) if by is not None else None
            alert["acknowledged_ts_ms"] = event.ts
        elif kind == EventKind.ALERT_RESOLVED:
            alert["status"] = "resolved"
            alert["resolved_ts_ms"] = event.ts
        n_reopened = _whole(attrs.get("n_reopened"))
        if n_reopened is not None and n_reopened >= 0:
            alert["n_reopened"] = n_reopened
        self.alerts[alert_id] = alert


def read_history(
    store: Store,
    start_ms: int,
    end_ms: int,
    entity: str = "**",
    *,
    failure_rules: Collection[str] = (),
    max_events: int = MAX_HISTORY_EVENTS,
    chunk_ms: int = DAY_MS,
) -> AlertHistory:
    """The alerts of the `alert.*` events in [start_ms, end_ms) whose entity matches the glob.

    Read a day at a time, so a range holding too many events is refused (HistoryTooLarge)
    after reading at most a day past `max_events`, never the whole range. Blocking: run it
    in a worker thread."""
    history = AlertHistory(failure_rules, max_events=max_events)
    at = start_ms
    while at < end_ms:
        stop = min(end_ms, at + chunk_ms)
        history.add(store.events(at, stop, entity, ALERT_EVENT_KINDS))
        at = stop
    return history


def with_engine(
    stored: Mapping[str, dict[str, Any]],
    known: Mapping[str, dict[str, Any]],
    open_ids: Collection[str],
    entity: str = "**",
) -> dict[str, dict[str, Any]]:
    """The stored alerts with the live engine's view laid over them, by id.

    `known` is what the engine holds (its open alerts and recent occurrences), fresher than
    the store: it replaces the stored alert of the same id, and its alerts whose entity
    matches `entity` are added (an event may not be written yet). A stored alert still open
    that the engine does not hold open was left open by a run that stopped before it
    resolved: it is not open any more, so it is shown `resolved`, with `resolved_ts_ms` null
    (when is not known)."""
    pattern = compile_pattern(entity)
    merged: dict[str, dict[str, Any]] = {}
    for alert_id, alert in stored.items():
        if alert_id in known:
            continue
        if alert["status"] != "resolved" and alert_id not in open_ids:
            alert = {**alert, "status": "resolved", "resolved_ts_ms": None}
        merged[alert_id] = alert
    for alert_id, alert in known.items():
        if pattern.match(alert["entity"]):
            merged[alert_id] = alert
    return merged


def overlaps(alert: Mapping[str, Any], start_ms: int, end_ms: int) -> bool:
    """Whether the alert was open at some time in [start_ms, end_ms): fired before the end,
    and not resolved before the start (one resolved at an unknown time counts until its
    last change)."""
    if alert["fired_ts_ms"] >= end_ms:
        return False
    resolved = alert["resolved_ts_ms"]
    if resolved is None and alert["status"] == "resolved":
        resolved = alert["ts_ms"]
    return resolved is None or resolved >= start_ms


def newest_fired_first(alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(alerts, key=lambda a: (-a["fired_ts_ms"], a["rule"], a["entity"], a["id"]))


def group_by_rule(
    alerts: Sequence[Mapping[str, Any]], max_entities: int = 10
) -> list[dict[str, Any]]:
    """One group per rule: its highest level, how many alerts, the first `max_entities`
    entities (in the order of `alerts`, each once) and the oldest fire time. Groups come
    most severe first, then largest, then by rule name.

    >>> a = [{"rule": "fan-stopped", "level": "CRITICAL", "entity": "s1", "fired_ts_ms": 5},
    ...      {"rule": "cpu", "level": "WARNING", "entity": "s1", "fired_ts_ms": 1},
    ...      {"rule": "fan-stopped", "level": "WARNING", "entity": "s2", "fired_ts_ms": 3}]
    >>> [(g["rule"], g["level"], g["count"], g["entities"], g["oldest_fired_ts_ms"])
    ...  for g in group_by_rule(a)]
    [('fan-stopped', 'CRITICAL', 2, ['s1', 's2'], 3), ('cpu', 'WARNING', 1, ['s1'], 1)]
    """
    groups: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        group = groups.get(alert["rule"])
        if group is None:
            group = groups[alert["rule"]] = {
                "rule": alert["rule"],
                "level": alert["level"],
                "count": 0,
                "entities": [],
                "oldest_fired_ts_ms": alert["fired_ts_ms"],
            }
        group["count"] += 1
        if LEVEL_RANK.get(alert["level"], 0) > LEVEL_RANK.get(group["level"], 0):
            group["level"] = alert["level"]
        entities: list[str] = group["entities"]
        if len(entities) < max_entities and alert["entity"] not in entities:
            entities.append(alert["entity"])
        group["oldest_fired_ts_ms"] = min(group["oldest_fired_ts_ms"], alert["fired_ts_ms"])
    return sorted(
        groups.values(),
        key=lambda g: (-LEVEL_RANK.get(g["level"], 0), -g["count"], g["rule"]),
    )
