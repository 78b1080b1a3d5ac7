"""Retention inside `rackwatch run`: each tier loses what is older than its period, at start
and then on a schedule, in a worker thread (deleting rows is database work, never done on the
event loop that drives fan control).

"Now" for retention is the wall clock, or the newest stored sample when the data runs ahead
of it (the twin at `--speed` > 1), as for the API's relative times: a simulated week at high
speed keeps its own last 7 days of raw samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rackwatch.store.base import Latest

log = logging.getLogger(__name__)


class RetentionStore(Protocol):
    def apply_retention(self, now_ms: int) -> dict[str, int]: ...
    def latest(self) -> Latest: ...


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """One retention run: when (wall clock), the instant it measured periods from, rows
    deleted per tier, and how long it took."""

    at_ms: int
    now_ms: int
    deleted: dict[str, int]
    seconds: float


@dataclass
class RetentionRunner:
    store: RetentionStore
    interval_s: float
    clock_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    last: RetentionRun | None = None
    deleted_total: dict[str, int] = field(default_factory=dict)
    n_runs: int = 0
    n_errors: int = 0

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {self.interval_s}")

    def now_ms(self) -> int:
        newest = self.store.latest().ts
        wall = self.clock_ms()
        return max(wall, int(newest.max())) if len(newest) else wall

    def run_once(self) -> RetentionRun:
        """Apply retention now (blocking: call it from a worker thread)."""
        began = time.perf_counter()
        now = self.now_ms()
        deleted = self.store.apply_retention(now)
        done = RetentionRun(self.clock_ms(), now, deleted, time.perf_counter() - began)
        self.last = done
        self.n_runs += 1
        for tier, n in deleted.items():
            self.deleted_total[tier] = self.deleted_total.get(tier, 0) + n
        if any(deleted.values()):
            log.info(
                "retention: deleted %s rows older than their period before %d",
                ", ".join(f"{n} {tier}" for tier, n in deleted.items()),
                now,
            )
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Run at once, then every `interval_s`, until `stop` is set. A failed run is logged
        and counted; the next one tries again."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                self.n_errors += 1
                log.exception("retention failed; it runs again in %g s", self.interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
