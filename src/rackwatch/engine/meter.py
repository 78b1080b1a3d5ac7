"""A rate meter: events per second over a sliding window, and the total since start."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RateMeter:
    """Counts added per second over the last `window_s` seconds (less right after start)."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self._window_s = window_s
        self._clock = clock
        self._started = clock()
        self._events: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def add(self, n: int) -> None:
        now = self._clock()
        self.total += n
        self._events.append((now, n))
        self._in_window += n
        self._trim(now)

    def rate(self) -> float:
        now = self._clock()
        self._trim(now)
        span = min(self._window_s, now - self._started)
        return self._in_window / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self._window_s:
            self._in_window -= self._events.popleft()[1]
