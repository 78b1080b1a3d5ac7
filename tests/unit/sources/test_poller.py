"""PacedPoller timing, driven by an injected clock: at speed 1 a step is published when the
wall clock reaches the instant it is stamped with, not up to a step later (or earlier)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from rackwatch.bus import MemoryBus, subjects
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.poller import PacedPoller
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

STEP_S = 5.0
NOW_S = 1_767_225_600.0 + 0.25  # 2026-01-01T00:00:00.250Z: between two step boundaries
LATE_S = 0.01
"""How late after its instant a step may be published (the injected clock has no jitter)."""
EARLY_S = 1e-3
"""How early: the clock's rounding (at 1.7e9 s, its resolution is 2.4e-7 s)."""


class FakeClock:
    """Seconds that move only when the poller sleeps: the pacing clock (`clock()`) and the
    wall clock (`clock.wall()`), equal until the wall clock is set."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s
        self.wall_offset_s = 0.0
        self.slept_s = 0.0
        """Seconds slept in all: time that passed, whatever the wall clock was set to."""

    def __call__(self) -> float:
        return self.now_s

    def wall(self) -> float:
        return self.now_s + self.wall_offset_s

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now_s += seconds
        self.slept_s += seconds
        await asyncio.sleep(0)

    def set_wall(self, seconds: float) -> None:
        """The wall clock is set (an NTP step, an operator), forwards or backwards."""
        self.wall_offset_s += seconds


class TimedBus(MemoryBus):
    """A bus that notes the clock at each telemetry publish, and stops the poller after `n`."""

    def __init__(self, clock: FakeClock, n: int, stop: asyncio.Event) -> None:
        super().__init__()
        self.clock = clock
        self.n = n
        self.stop = stop
        self.seen: list[tuple[float, int]] = []
        """(clock at publish, the batch's newest ts_ms)"""
        self.slept: list[float] = []
        """The clock's seconds slept at each publish."""

    async def publish(self, subject: str, message: Any) -> None:
        if subject == subjects.telemetry("twin"):
            assert isinstance(message, Batch)
            self.seen.append((self.clock(), int(message.ts.max())))
            self.slept.append(self.clock.slept_s)
            if len(self.seen) >= self.n:
                self.stop.set()
        await super().publish(subject, message)


def run_poller(start_ms: int, now_s: float, *, speed: float = 1.0, n: int = 5) -> TimedBus:
    clock = FakeClock(now_s)

    async def main() -> TimedBus:
        stop = asyncio.Event()
        bus = TimedBus(clock, n, stop)
        twin = Twin.from_scenario("small", seed=1, start_ms=start_ms, step_s=STEP_S)
        poller = PacedPoller(
            TwinSource(twin, SeriesRegistry()),
            bus,
            step_s=STEP_S,
            speed=speed,
            clock=clock,
            wall_clock=clock.wall,
            sleep=clock.sleep,
        )
        await asyncio.wait_for(poller.run(stop), 5)
        return bus

    return asyncio.run(main())


def boundary_ms(now_s: float, *, up: bool) -> int:
    step_ms = int(STEP_S * 1000)
    now_ms = int(now_s * 1000)
    return (now_ms // step_ms + (1 if up else 0)) * step_ms


def test_at_speed_1_each_step_is_published_when_the_clock_reaches_its_instant() -> None:
    start_ms = boundary_ms(NOW_S, up=True)  # how `rackwatch run` starts the twin
    bus = run_poller(start_ms, NOW_S)
    assert [ts for _at, ts in bus.seen] == [start_ms + k * 5000 for k in range(5)]
    for at_s, ts_ms in bus.seen:
        assert -EARLY_S <= at_s - ts_ms / 1000 <= LATE_S, (at_s, ts_ms)


def test_a_start_just_behind_the_clock_is_caught_up_then_published_on_time() -> None:
    """A twin started at the step boundary before now (as `rackwatch run` used to): the first
    step is due already and goes at once; every later one when the clock reaches it, not
    a constant lag after it."""
    start_ms = boundary_ms(NOW_S + 3.7, up=False)  # 3.7 s behind the clock... at most a step
    now_s = start_ms / 1000 + 3.7
    bus = run_poller(start_ms, now_s)
    first_at, first_ts = bus.seen[0]
    assert first_ts == start_ms and first_at == now_s
    for at_s, ts_ms in bus.seen[1:]:
        assert -EARLY_S <= at_s - ts_ms / 1000 <= LATE_S, (at_s, ts_ms)


@pytest.mark.parametrize("speed", [60.0, 0.5])
def test_at_other_speeds_step_k_is_published_when_elapsed_times_speed_reaches_k_steps(
    speed: float,
) -> None:
    start_ms = boundary_ms(NOW_S, up=False) - 86_400_000  # far from now: no waiting for it
    bus = run_poller(start_ms, NOW_S, speed=speed)
    for k, (at_s, ts_ms) in enumerate(bus.seen):
        assert ts_ms == start_ms + k * 5000
        due_s = NOW_S + k * STEP_S / speed
        assert -EARLY_S <= at_s - due_s <= LATE_S, (k, at_s - due_s)


@pytest.mark.parametrize("jump_s", [-3600.0, 3600.0])
def test_setting_the_wall_clock_later_neither_stalls_the_twin_nor_makes_it_race(
    jump_s: float,
) -> None:
    clock = FakeClock(NOW_S)
    start_ms = boundary_ms(NOW_S, up=True)

    async def main() -> list[float]:
        stop = asyncio.Event()
        bus = TimedBus(clock, 6, stop)
        twin = Twin.from_scenario("small", seed=1, start_ms=start_ms, step_s=STEP_S)
        poller = PacedPoller(
            TwinSource(twin, SeriesRegistry()),
            bus,
            step_s=STEP_S,
            clock=clock,
            wall_clock=clock.wall,
            sleep=clock.sleep,
        )
        task = asyncio.create_task(poller.run(stop))
        while len(bus.seen) < 3:
            await asyncio.sleep(0)
        clock.set_wall(jump_s)
        await asyncio.wait_for(task, 5)
        return bus.slept

    slept = asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(slept)]
    assert all(0 <= gap <= STEP_S + LATE_S for gap in gaps), gaps
