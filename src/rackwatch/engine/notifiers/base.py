"""What a notifier receives and must do.

A `Notification` is one alert occurrence (fired, escalated or resolved) in plain values; a
`Notifier` delivers it somewhere (console, file, email, webhook, Slack). `send` raises on
failure (`NotificationFailed` with a message that says what to check, never a secret);
retrying, timeouts and isolation from the other notifiers are the dispatcher's and the
notifier's business, never the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rackwatch.errors import RackwatchError
from rackwatch.model import Severity


class NotificationFailed(RackwatchError):
    """A notifier could not deliver; the message says what to check."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert occurrence to tell people about.

    `kind` is the event kind (`alert.fired`, `alert.escalated`, `alert.resolved`, or
    `source.unavailable` / `source.recovered` for a source silent on the wall clock); `level`
    is the alert's severity (for a resolution, the level it had).
    """

    kind: str
    alert_id: str
    ts_ms: int
    entity: str
    rule: str
    metric: str
    unit: str
    level: Severity
    value: float
    threshold: float
    message: str

    @property
    def is_resolved(self) -> bool:
        """An alert resolved, or a silent source heard again: shown as resolved."""
        return self.kind in ("alert.resolved", "source.recovered")

    @property
    def timestamp(self) -> str:
        """UTC ISO 8601 with milliseconds."""
        moment = datetime.fromtimestamp(self.ts_ms / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def title(self) -> str:
        state = "RESOLVED" if self.is_resolved else self.level.name
        return f"[{state}] {self.entity}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the alert fields (timestamp, metric, value, threshold, level,
        message) plus where and which alert."""
        return {
            "kind": self.kind,
            "alert_id": self.alert_id,
            "timestamp": self.timestamp,
            "ts_ms": self.ts_ms,
            "entity": self.entity,
            "rule": self.rule,
            "metric": self.metric,
            "unit": self.unit,
            "value": self.value,
            "threshold": self.threshold,
            "level": self.level.name,
            "status": "resolved" if self.is_resolved else "firing",
            "message": self.message,
        }


class Notifier(Protocol):
    """Delivers notifications somewhere. `name` identifies it in stats and logs."""

    name: str

    async def send(self, notification: Notification) -> None:
        """Deliver one notification; raise (NotificationFailed preferably) if it was not."""
        ...

    async def close(self) -> None:
        """Release connections and files; called once, after the last send."""
        ...
