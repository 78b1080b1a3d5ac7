"""Which notifications a notifier takes: minimum level, entity globs, hours of the day.

Filters by level, component and time. The time window is read in the notifier's own
time zone and may cross midnight (22:00-07:00: on-call nights). It applies to the alert's
timestamp (the samples' clock), so a simulated day at any speed behaves like a real one.

>>> from zoneinfo import ZoneInfo
>>> from datetime import time
>>> nights = TimeWindow(time(22), time(7), ZoneInfo("Europe/Paris"))
>>> nights.contains(1_767_222_000_000)  # 2025-12-31T23:00Z = 00:00 in Paris
True
>>> nights.contains(1_767_258_000_000)  # 2026-01-01T09:00Z = 10:00 in Paris
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from rackwatch.engine.notifiers.base import Notification
from rackwatch.model import Severity
from rackwatch.model import entity as entity_path


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """[start, end) in local time of `zone`; start > end crosses midnight."""

    start: time
    end: time
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(
                f"time window {self.start}-{self.end} is empty: give different start and end "
                "times, or no window to notify at any hour"
            )

    def contains(self, ts_ms: int) -> bool:
        local = datetime.fromtimestamp(ts_ms / 1000, tz=self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class NotificationFilter:
    """Accepts a notification at or above `min_level`, whose entity matches one of `entities`,
    inside `window` (None: any hour). Resolutions pass on the level the alert had."""

    min_level: Severity = Severity.WARNING
    entities: Sequence[str] = ("**",)
    window: TimeWindow | None = None

    def accepts(self, notification: Notification) -> bool:
        if notification.level < self.min_level:
            return False
        if not any(entity_path.matches(notification.entity, glob) for glob in self.entities):
            return False
        return self.window is None or self.window.contains(notification.ts_ms)
