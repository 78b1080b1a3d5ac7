"""The alert lifecycle: firing → acknowledged → resolved, one alert per (rule, entity).

Pure: `AlertBook.apply(transition)` and `AlertBook.acknowledge(...)` return `AlertChange`s
(each turns into an `Event` and, when `is_notified`, a notification); nothing here awaits.

Deduplication: while an alert is open, the same (rule, entity) only changes its severity
(up: `alert.escalated`; down: no event, the alert just shows the lower level).
Cooldown (against repeated alerts, 300 s by default): a condition that comes back within the
cooldown after its alert resolved *reopens* that alert (same id, `alert.fired` event with
`reopened: true`) instead of opening a new one, and no one is notified again unless the level
is higher than any level already notified for it. The alert stays visible (API, store, device
state): only the repeated notification is suppressed. The cooldown restarts at each resolve,
so a flapping condition stays quiet until it has been calm for the whole cooldown.
Alerts raised while their entity is in maintenance are recorded with `is_suppressed` and
never notified (nor is their resolution).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from rackwatch.engine.alerts.rules import Transition
from rackwatch.errors import RackwatchError
from rackwatch.model import Event, EventKind, Severity
from rackwatch.model.times import iso


class AlertNotFound(RackwatchError, LookupError):
    """No open alert has this id (it may have resolved meanwhile)."""


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def alert_id(rule: str, entity: str, fired_ts: int) -> str:
    """Stable, URL-safe id: the same alert gets the same id on every replay."""
    return hashlib.sha1(
        f"{rule}\0{entity}\0{fired_ts}".encode(), usedforsecurity=False
    ).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """An immutable snapshot of one alert; the book replaces it on every change."""

    id: str
    rule: str
    entity: str
    metric: str
    """What the threshold applies to (`pdu_power_watts/pdu_capacity_watts` for a ratio)."""
    unit: str
    severity: Severity
    status: AlertStatus
    fired_ts: int
    ts: int
    """Timestamp of the last change."""
    value: float
    threshold: float
    message: str
    is_failure: bool = False
    is_suppressed: bool = False
    """Raised while the entity was in maintenance: recorded, never notified."""
    acknowledged_by: str | None = None
    acknowledged_ts: int | None = None
    resolved_ts: int | None = None
    n_reopened: int = 0
    notified_severity: Severity | None = None
    """Highest level anyone was notified of for this alert (None: never notified)."""
    is_episode_notified: bool = False
    """Whether the current firing episode was notified (then its resolution is too)."""

    @property
    def is_open(self) -> bool:
        return self.status is not AlertStatus.RESOLVED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, the WebSocket's alert shape (docs/API.md) plus the lifecycle fields."""
        return {
            "id": self.id,
            "timestamp": iso(self.ts),
            "ts_ms": self.ts,
            "entity": self.entity,
            "rule": self.rule,
            "metric": self.metric,
            "unit": self.unit,
            "value": self.value,
            "threshold": self.threshold,
            "level": self.severity.name,
            "status": str(self.status),
            "message": self.message,
            "fired_ts_ms": self.fired_ts,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_ts_ms": self.acknowledged_ts,
            "resolved_ts_ms": self.resolved_ts,
            "is_failure": self.is_failure,
            "is_suppressed": self.is_suppressed,
            "n_reopened": self.n_reopened,
        }


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One lifecycle step: `kind` is the event kind; notify people when `is_notified`."""

    kind: EventKind
    alert: Alert
    is_notified: bool
    by: str | None = None
    """Who acknowledged (acknowledgements only)."""
    is_reopened: bool = False

    def event(self) -> Event:
        a = self.alert
        attributes: dict[str, Any] = {
            "alert_id": a.id,
            "rule": a.rule,
            "metric": a.metric,
            "unit": a.unit,
            "value": a.value,
            "threshold": a.threshold,
            "level": a.severity.name,
            "message": a.message,
            "fired_ts": a.fired_ts,
            "is_suppressed": a.is_suppressed,
            "is_failure": a.is_failure,
            "n_reopened": a.n_reopened,
        }
        if self.kind is EventKind.ALERT_FIRED:
            attributes["reopened"] = self.is_reopened
        if self.by is not None:
            attributes["by"] = self.by
        if self.kind is EventKind.ALERT_RESOLVED:
            attributes["duration_s"] = (a.ts - a.fired_ts) / 1000
        severity = Severity.INFO if self.kind is EventKind.ALERT_RESOLVED else a.severity
        if self.kind is EventKind.ALERT_ACKNOWLEDGED:
            severity = Severity.INFO
        return Event(
            ts=a.ts, kind=self.kind, entity=a.entity, severity=severity, attributes=attributes
        )


class AlertBook:
    """Open alerts by (rule, entity), recently resolved ones for the cooldown, and a bounded
    history of occurrences for `recent`."""

    def __init__(self, *, cooldown_ms: int = 300_000, history: int = 1000) -> None:
        if cooldown_ms < 0 or history < 1:
            raise ValueError("cooldown_ms must be >= 0 and history >= 1")
        self.cooldown_ms = cooldown_ms
        self._open: dict[tuple[str, str], Alert] = {}
        self._by_id: dict[str, tuple[str, str]] = {}
        self._resolved: dict[tuple[str, str], Alert] = {}
        self._history: deque[dict[str, Any]] = deque(maxlen=history)

    # --- queries --------------------------------------------------------------------------

    def open_alerts(self) -> list[Alert]:
        """Firing and acknowledged alerts, oldest first."""
        return sorted(self._open.values(), key=lambda a: (a.fired_ts, a.rule, a.entity))

    def get(self, alert_id: str) -> Alert | None:
        key = self._by_id.get(alert_id)
        return self._open.get(key) if key is not None else None

    def recent(self, since_ms: int) -> list[dict[str, Any]]:
        """Occurrences (fired, escalated, resolved) with `ts_ms > since_ms`, oldest first."""
        return [item for item in self._history if item["ts_ms"] > since_ms]

    # --- changes --------------------------------------------------------------------------

    def apply(self, tr: Transition, *, is_suppressed: bool = False) -> AlertChange | None:
        """The change a rule transition makes (None: nothing anyone needs to hear of)."""
        key = (tr.rule.name, tr.entity)
        current = self._open.get(key)
        if tr.level is None:
            return self._resolve(current, tr) if current is not None else None
        if current is None:
            return self._fire(key, tr, is_suppressed)
        alert = dataclasses.replace(
            current,
            severity=tr.level,
            ts=tr.ts,
            value=tr.value,
            threshold=tr.threshold,
            message=tr.message,
        )
        if tr.level <= current.severity:
            self._store(key, alert)
            return None
        return self._record(key, EventKind.ALERT_ESCALATED, alert)

    def acknowledge(self, alert_id: str, by: str, ts: int) -> AlertChange | None:
        """Acknowledge an open alert; None if it already was. AlertNotFound if not open."""
        if not by.strip():
            raise ValueError("say who acknowledges the alert (a user or service name)")
        key = self._by_id.get(alert_id)
        current = self._open.get(key) if key is not None else None
        if key is None or current is None:
            raise AlertNotFound(
                f"no open alert with id {alert_id!r}: it may have resolved; "
                "list the open ones and use one of their ids"
            )
        if current.status is AlertStatus.ACKNOWLEDGED:
            return None
        alert = dataclasses.replace(
            current, status=AlertStatus.ACKNOWLEDGED, acknowledged_by=by, acknowledged_ts=ts
        )
        self._store(key, alert)
        return AlertChange(
            EventKind.ALERT_ACKNOWLEDGED, dataclasses.replace(alert, ts=ts), False, by
        )

    def _fire(self, key: tuple[str, str], tr: Transition, is_suppressed: bool) -> AlertChange:
        previous = self._resolved.pop(key, None)
        is_reopened = (
            previous is not None
            and previous.resolved_ts is not None
            and tr.ts - previous.resolved_ts < self.cooldown_ms
        )
        if previous is not None and is_reopened:
            self._by_id.pop(previous.id, None)
            alert = dataclasses.replace(
                previous,
                severity=tr.level or Severity.WARNING,
                status=AlertStatus.FIRING,
                ts=tr.ts,
                value=tr.value,
                threshold=tr.threshold,
                message=tr.message,
                is_suppressed=is_suppressed,
                acknowledged_by=None,
                acknowledged_ts=None,
                resolved_ts=None,
                n_reopened=previous.n_reopened + 1,
                is_episode_notified=False,
            )
        else:
            alert = Alert(
                id=alert_id(tr.rule.name, tr.entity, tr.ts),
                rule=tr.rule.name,
                entity=tr.entity,
                metric=tr.rule.signal,
                unit=tr.rule.unit,
                severity=tr.level or Severity.WARNING,
                status=AlertStatus.FIRING,
                fired_ts=tr.ts,
                ts=tr.ts,
                value=tr.value,
                threshold=tr.threshold,
                message=tr.message,
                is_failure=tr.rule.is_failure,
                is_suppressed=is_suppressed,
            )
        return self._record(key, EventKind.ALERT_FIRED, alert, is_reopened=is_reopened)

    def _resolve(self, current: Alert, tr: Transition) -> AlertChange:
        alert = dataclasses.replace(
            current,
            status=AlertStatus.RESOLVED,
            ts=tr.ts,
            value=tr.value,
            threshold=tr.threshold,
            message=tr.message,
            resolved_ts=tr.ts,
        )
        key = (alert.rule, alert.entity)
        del self._open[key]
        self._by_id.pop(alert.id, None)
        self._resolved[key] = alert
        self._history.append(alert.as_dict())
        return AlertChange(EventKind.ALERT_RESOLVED, alert, current.is_episode_notified)

    def _record(
        self, key: tuple[str, str], kind: EventKind, alert: Alert, *, is_reopened: bool = False
    ) -> AlertChange:
        """Store a fired or escalated alert and decide whether to notify."""
        is_notified = not alert.is_suppressed and (
            alert.notified_severity is None or alert.severity > alert.notified_severity
        )
        if is_notified:
            alert = dataclasses.replace(
                alert, notified_severity=alert.severity, is_episode_notified=True
            )
        self._store(key, alert)
        self._history.append(alert.as_dict())
        return AlertChange(kind, alert, is_notified, is_reopened=is_reopened)

    def _store(self, key: tuple[str, str], alert: Alert) -> None:
        self._open[key] = alert
        self._by_id[alert.id] = key
