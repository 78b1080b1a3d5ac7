"""Drives a simulated source in scaled real time and carries Commands back to it.

When a step is published: step k (stamped `first + k * step`) goes out when the pacing clock
has run `k * step / speed` seconds past the *anchor*, the moment step 0 is due. In real time
(`speed` <= 1) with a first step within one step of the wall clock (how `rackwatch run` starts
the twin: at the next step boundary), the anchor is that step's own instant on the wall clock,
so a sample is published when the wall clock reaches the instant it describes, not up to a
step later. Otherwise (faster than real time, where the simulated clock runs ahead by design;
a replay of the past; a continuation after stored data that runs ahead of the wall clock) the
anchor is the moment `run` starts, and the first step goes out at once.

The poller sleeps until the next step is due (at most `tick_s`, so a stop is seen promptly),
so a step is late by the loop's wake-up delay only. Where steps come due more often than every
`min_read_interval_s` (high speeds), one read carries every step due since the previous one
(each at most that late), so the bus is not flooded with one-step Batches. The wall clock is
read once, to place the anchor; pacing follows the monotonic clock, so a wall clock that is
set back or forward later neither stalls the twin nor makes it race to catch up.

Commands for the source arrive on `commands.<name>`; each one is applied and answered with a
`command.applied` or `command.rejected` Event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from rackwatch.bus import Bus, subjects
from rackwatch.errors import CommandRejected
from rackwatch.model import Batch, Command, Event, EventKind, Severity

log = logging.getLogger(__name__)

_EARLY_S = 1e-4


class SteppedSource(Protocol):
    name: str

    @property
    def now_ms(self) -> int: ...

    def read(self, n_steps: int = 1) -> tuple[Batch, list[Event]]: ...

    def handle(self, command: Command) -> Event: ...


class PacedPoller:
    def __init__(
        self,
        source: SteppedSource,
        bus: Bus,
        *,
        step_s: float,
        speed: float = 1.0,
        tick_s: float = 0.25,
        min_read_interval_s: float = 0.05,
        max_steps_per_read: int = 720,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`clock` paces the steps (monotonic seconds); `wall_clock` (epoch seconds) is read
        once per `run` to line the source's first step up with it. Tests pass one fake for
        both, with a `sleep` that moves it."""
        if step_s <= 0 or speed <= 0:
            raise ValueError("step_s and speed must be positive")
        self.source = source
        self.bus = bus
        self.step_s = step_s
        self.speed = speed
        self.tick_s = tick_s
        self.min_read_interval_s = min_read_interval_s
        self.max_steps_per_read = max_steps_per_read
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.steps_done = 0
        self.n_samples = 0
        self.lag_steps = 0
        """Steps that were due but not yet simulated at the last tick (the twin is behind)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Publish each step when it is due (see the module docstring) until `stop` is set."""
        anchor = self._anchor()
        interval_s = self.step_s / self.speed  # pacing seconds per step
        last_read = -math.inf
        catching_up = False
        while not stop.is_set():
            now = self.clock()
            due = self._due(now - anchor, interval_s)
            todo = min(due - self.steps_done, self.max_steps_per_read)
            if todo > 0 and (catching_up or now - last_read >= self.min_read_interval_s - _EARLY_S):
                last_read = now
                await self._publish(todo)
            self.lag_steps = max(0, due - self.steps_done)
            catching_up = self.lag_steps > 0 and todo == self.max_steps_per_read
            if catching_up:
                await asyncio.sleep(0)  # behind: let the others run, then catch up
                continue
            wake = max(anchor + self.steps_done * interval_s, last_read + self.min_read_interval_s)
            await self.sleep(min(self.tick_s, max(wake - self.clock(), 0.0)))
        await self._publish(0)  # events still pending (a command applied since the last read)

    @staticmethod
    def _due(elapsed_s: float, interval_s: float) -> int:
        """Steps due `elapsed_s` after the anchor. A step due within `_EARLY_S` from now
        counts as due: the clock's rounding must not leave the loop waking an instant short
        of it (at 1.7e9 s, an epoch clock's resolution is 2.4e-7 s)."""
        elapsed_s += _EARLY_S
        return math.floor(elapsed_s / interval_s) + 1 if elapsed_s >= 0 else 0

    def _anchor(self) -> float:
        """The pacing clock's reading at which step 0 is due: the source's first instant
        when running in real time and that instant is within a step of the wall clock,
        else now."""
        now = self.clock()
        lead_s = self.source.now_ms / 1000 - self.wall_clock()
        if self.speed <= 1 and abs(lead_s) <= self.step_s:
            return now + lead_s
        return now

    async def _publish(self, n_steps: int) -> None:
        batch, events = self.source.read(n_steps)
        self.steps_done += n_steps
        self.n_samples += len(batch)
        if len(batch):
            await self.bus.publish(subjects.telemetry(self.source.name), batch)
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)

    async def obey(self) -> None:
        """Apply every Command published for this source until the bus closes.

        An applied command's Event comes out with the source's next read (at the simulated
        instant it takes effect); a rejected one is published at once.
        """
        async with self.bus.subscribe(subjects.commands(self.source.name)) as commands:
            async for _subject, command in commands:
                try:
                    self.source.handle(command)
                except CommandRejected as exc:
                    event = Event(
                        ts=self.source.now_ms,
                        kind=EventKind.COMMAND_REJECTED,
                        entity=command.target,
                        severity=Severity.WARNING,
                        attributes={
                            "action": command.action,
                            "reason": str(exc),
                            "issued_by": command.issued_by,
                        },
                    )
                    await self.bus.publish(subjects.events(event.kind), event)
