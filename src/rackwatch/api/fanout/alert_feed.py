"""The alert occurrences each group has not been sent yet.

Each `monitoring_data` carries the occurrences (fired, escalated, resolved) that the alert
engine recorded since the group's previous message, under its entity glob. The engine's
bounded history is read at most once per batch, and each group remembers the last occurrence
it passed on (a mark, not a time: sources whose clocks differ, such as the twin running ahead
and a real host, must not hide each other's alerts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rackwatch.api.fanout.groups import Group

RecentAlerts = Callable[[int], list[dict[str, Any]]]
"""`AlertEngine.recent_alerts`: occurrences with `ts_ms > since_ms`, in the order recorded."""
AlertMark = tuple[Any, ...]


class AlertFeed:
    """Reads the engine's recent occurrences (None: no alert engine, no alerts)."""

    def __init__(self, recent_alerts: RecentAlerts | None) -> None:
        self.recent_alerts = recent_alerts
        self._history: list[dict[str, Any]] | None = None
        """The engine's recent occurrences, read once for the batch being fanned out."""
        self._after: dict[AlertMark | None, list[dict[str, Any]]] = {}

    def next_batch(self) -> None:
        """Forget what was read for the previous batch."""
        self._history = None
        self._after.clear()

    def for_group(self, group: Group) -> list[dict[str, Any]]:
        """Occurrences recorded since the group's previous message, under its entity glob;
        the group's mark moves past them."""
        if self.recent_alerts is None:
            return []
        mark = group.alerts_mark
        found = self._after.get(mark)
        if found is None:
            if self._history is None:
                self._history = self.recent_alerts(-1)
            found = self._after[mark] = _after(self._history, mark)
        if not found:
            return []
        group.alerts_mark = _mark(found[-1])
        return [a for a in found if group.wants_alert(a)]

    def newest_mark(self) -> AlertMark | None:
        """The newest occurrence so far: a new subscription gets only later ones."""
        if self.recent_alerts is None:
            return None
        history = self.recent_alerts(-1)
        return _mark(history[-1]) if history else None


def _mark(alert: dict[str, Any]) -> AlertMark:
    """What tells one occurrence from another: alert id, time, status and level."""
    return (alert.get("id"), alert.get("ts_ms"), alert.get("status"), alert.get("level"))


def _after(history: list[dict[str, Any]], mark: AlertMark | None) -> list[dict[str, Any]]:
    """The occurrences after the one marked; all of them when it is no longer in the
    (bounded) history, i.e. more came since than the history holds."""
    if mark is None:
        return history
    for i in range(len(history) - 1, -1, -1):
        if _mark(history[i]) == mark:
            return history[i + 1 :]
    return history
