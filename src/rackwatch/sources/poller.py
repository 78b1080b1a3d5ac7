"""Drives a simulated source in scaled real time and carries Commands back to it.

The twin's clock is its own: at `speed` x, `speed` simulated seconds pass per wall second, so
each wall tick reads however many steps have come due (several at high speed, none at low).
Commands for the source arrive on `commands.<name>`; each one is applied and answered with a
`command.applied` or `command.rejected` Event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from rackwatch.bus import Bus, subjects
from rackwatch.errors import CommandRejected
from rackwatch.model import Batch, Command, Event, EventKind, Severity

log = logging.getLogger(__name__)


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
        max_steps_per_read: int = 720,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if step_s <= 0 or speed <= 0:
            raise ValueError("step_s and speed must be positive")
        self.source = source
        self.bus = bus
        self.step_s = step_s
        self.speed = speed
        self.tick_s = tick_s
        self.max_steps_per_read = max_steps_per_read
        self.clock = clock
        self.sleep = sleep
        self.steps_done = 0
        self.n_samples = 0
        self.lag_steps = 0
        """Steps that were due but not yet simulated at the last tick (the twin is behind)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Publish due steps until `stop` is set; the first step is read at once."""
        started = self.clock()
        while not stop.is_set():
            due = int((self.clock() - started) * self.speed / self.step_s) + 1
            todo = min(due - self.steps_done, self.max_steps_per_read)
            if todo > 0:
                await self._publish(todo)
            self.lag_steps = max(0, due - self.steps_done)
            if self.lag_steps == 0:
                await self.sleep(self.tick_s)
            else:
                await asyncio.sleep(0)  # behind: let the others run, then catch up
        await self._publish(0)  # events still pending (a command applied since the last read)

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
