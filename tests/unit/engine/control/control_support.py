"""Helpers for the controller tests: a small layout and observations built from plain lists."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from rackwatch.engine.control import FanLayout, Observation

SERVERS = ("c01/r01/s01", "c01/r01/s02", "c01/r01/s03")


def make_layout(servers: Sequence[str] = SERVERS) -> FanLayout:
    fans = tuple(f"{s}/fan{k}" for s in servers for k in (1, 2))
    return FanLayout(tuple(servers), fans, np.repeat(np.arange(len(servers)), 2))


def observe(
    now_s: float,
    cpu_c: Sequence[float],
    levels: Sequence[float],
    *,
    rpm: Sequence[float] | None = None,
    inlet_c: float | Sequence[float] = 24.0,
    cpu_s: Sequence[float] | None = None,
) -> Observation:
    """An observation at `now_s`; per server CPU, per fan level (rpm 1000 x level by default)."""
    n = len(cpu_c)
    level_arr = np.asarray(levels, dtype=np.float64)
    return Observation(
        now_ms=int(now_s * 1000),
        cpu_c=np.asarray(cpu_c, dtype=np.float64),
        cpu_ms=(
            np.full(n, int(now_s * 1000), dtype=np.int64)
            if cpu_s is None
            else (np.asarray(cpu_s) * 1000).astype(np.int64)
        ),
        inlet_c=np.broadcast_to(np.asarray(inlet_c, dtype=np.float64), (n,)).copy(),
        fan_rpm=level_arr * 1000.0 if rpm is None else np.asarray(rpm, dtype=np.float64),
        fan_level=level_arr,
        fan_level_ms=np.full(len(level_arr), int(now_s * 1000), dtype=np.int64),
    )


class FakeTime:
    """A monotonic clock and its `sleep`, moved by hand: `advance(s)` wakes the sleepers that
    are due, so a watchdog is tested without waiting (no real sleep)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self.now]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now]
        for _t, future in due:
            if not future.done():
                future.set_result(None)
        for _ in range(20):
            await asyncio.sleep(0)
