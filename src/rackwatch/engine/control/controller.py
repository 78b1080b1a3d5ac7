"""The fan controller's async shell: telemetry in, Commands and Events out, over the bus.

It folds each telemetry Batch of its source into an Observation and calls the pure `step`;
the Commands go to `commands.<source>` (the source obeys and logs each one as a
`command.applied` Event with `issued_by` and `reason`), the Events to `events.<kind>`.
If the step raises, every fan not in manual mode goes high (`safety.fail_safe`) and a
`control.failsafe` Event says why; control resumes at the first step that succeeds.

The step's clock is the telemetry's, and it stops when the source stops. So with a `silence`
policy a watchdog on the wall clock stands beside it (from the start: a source that never
sends counts too): after `silence.timeout_s` wall seconds without a batch, every auto fan that
has not failed goes high through the normal command path (`safety.silence_fail_safe`, reason
`telemetry_lost`) with one `control.failsafe` Event on the room (`reason: telemetry_lost`,
`source`, `silent_s`); the next batch brings `control.failsafe_cleared` and normal steps,
which bring the fans down one level per lower dwell.

Operators reach it through `set_mode` / `set_level` (the control API calls them), or by
publishing a `fan.set_mode` / `fan.set_level` Command on `commands.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.engine.control.commands import Reason
from rackwatch.engine.control.fan import DEFAULT_POLICY, Decision, FanPolicy, step
from rackwatch.engine.control.layout import FanLayout
from rackwatch.engine.control.modes import (
    FanMode,
    manual_command,
    mode_event,
    parse_level,
    parse_mode,
    with_manual_level,
    with_mode,
)
from rackwatch.engine.control.observe import TelemetryView
from rackwatch.engine.control.safety import MAX_LEVEL, fail_safe, silence_fail_safe
from rackwatch.engine.control.state import NEVER, ControlState, Observation
from rackwatch.engine.states import (
    SilencePolicy,
    SourceChange,
    SourceWatch,
    sleep_until_silence,
)
from rackwatch.errors import CommandRejected
from rackwatch.model.records import Command, CommandAction, Event, EventKind, Severity
from rackwatch.model.series import SeriesRegistry

log = logging.getLogger(__name__)

CONTROL = "control"
"""Commands for the controller itself arrive on `subjects.commands(CONTROL)`."""
StepFn = Callable[[ControlState, Observation, FanPolicy], Decision]


@dataclass(frozen=True, slots=True)
class FanStatus:
    """One fan as the controller sees it (for the API and the dashboard)."""

    fan: str
    server: str
    mode: str
    level: int | None
    """Level last reported by the fan; None before any telemetry."""
    is_failed: bool
    is_failsafe: bool
    """Its server's telemetry is lost and auto fans are held high."""


class FanController:
    """Closed-loop fan control for one source (the twin by default).

    `layout` names the servers and fans (`FanLayout.from_inventory(twin.inventory())`);
    `registry` is the series registry the source interns into. Run `run()` as a task: it
    returns when the bus closes. `ready` is set once its subscriptions are open.
    """

    def __init__(
        self,
        bus: Bus,
        layout: FanLayout,
        registry: SeriesRegistry,
        *,
        policy: FanPolicy = DEFAULT_POLICY,
        source: str = "twin",
        entity: str = "room",
        step_fn: StepFn = step,
        max_pending: int = 1000,
        silence: SilencePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.layout = layout
        self.policy = policy
        self.source = source
        self.entity = entity
        """Entity of the controller's own Events (a controller error concerns the room)."""
        self.state = ControlState.initial(layout)
        self.view = TelemetryView(layout, registry)
        self.ready = asyncio.Event()
        self.n_steps = 0
        self.n_commands = 0
        self.n_errors = 0
        self.is_in_error = False
        self.watch = None if silence is None else SourceWatch(silence)
        """Wall-clock silence of the source (None: not watched)."""
        self.n_silences = 0
        self._step = step_fn
        self._max_pending = max_pending
        self._clock = clock
        self._telemetry: Subscription | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def grow(self, items: Iterable[Mapping[str, Any]]) -> bool:
        """Take the servers and fans of inventory `items` this controller does not drive yet
        (MQTT devices that announce themselves after the start): from the next decision on,
        they are driven like the others. Returns whether any was new. Call on the event loop
        the controller runs on."""
        layout = self.layout.extended(items)
        if (layout.n_servers, layout.n_fans) == (self.layout.n_servers, self.layout.n_fans):
            return False
        self.state = self.state.grown(layout, self.view.now_ms)
        self.view.grow(layout)
        self.layout = layout
        self._arm_watchdog()
        log.info(
            "fan controller of %s: now %d servers, %d fans",
            self.source,
            layout.n_servers,
            layout.n_fans,
        )
        return True

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow telemetry and obey controller commands until the bus closes."""
        async with (
            self.bus.subscribe(
                subjects.telemetry(self.source), max_pending=self._max_pending
            ) as telemetry,
            self.bus.subscribe(subjects.commands(CONTROL)) as orders,
        ):
            self._telemetry = telemetry
            self.ready.set()
            self._arm_watchdog()
            try:
                await asyncio.gather(self._follow(telemetry), self._obey(orders))
            finally:
                self._telemetry = None
                watchdog, self._watchdog = self._watchdog, None
                if watchdog is not None:
                    watchdog.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watchdog

    def _arm_watchdog(self) -> None:
        """Watch the source's silence once there are fans to drive (an MQTT controller
        starts empty; a silent source with nothing to drive is no alarm)."""
        if (
            self.watch is None
            or self._watchdog is not None
            or self._telemetry is None
            or not self.layout.n_fans
        ):
            return
        self.watch.expect(self.source, self.watch.policy.monotonic())
        self._watchdog = asyncio.create_task(self._watch(self.watch, self._telemetry))

    async def _follow(self, telemetry: Subscription) -> None:
        async for _subject, batch in telemetry:
            self.view.update(batch)
            if self.watch is not None:
                newest = int(batch.ts.max()) if len(batch) else None
                change = self.watch.heard(self.source, self.watch.policy.monotonic(), newest)
                if change is not None:
                    await self._source_back(change)
            if telemetry.pending:
                continue  # behind: fold what is queued, then decide once on the newest
            await self.decide()

    async def _watch(self, watch: SourceWatch, telemetry: Subscription) -> None:
        """Wake at the silence deadline; queued batches mean this controller is behind, not
        that the source is silent."""
        while True:
            await sleep_until_silence(watch)
            now = watch.policy.monotonic()
            if telemetry.pending:
                watch.postpone(now)
                continue
            fallback_ms = round(self._clock() * 1000)
            for change in watch.check(now, fallback_ms=fallback_ms):
                await self._source_silent(change)

    async def _source_silent(self, change: SourceChange) -> None:
        """Every auto fan that has not failed to high; one Event on the room says why."""
        self.n_silences += 1
        log.warning(
            "no telemetry from %s for %.0f s (wall clock): fans in auto go high",
            change.source,
            change.silent_s,
        )
        self.state, commands = silence_fail_safe(self.state, change.ts)
        await self._send(commands, [self._silence_event(change)])

    async def _source_back(self, change: SourceChange) -> None:
        """The source is heard again: servers leave the fail-safe; the next step decides."""
        log.info("telemetry from %s is back after %.0f s", change.source, change.silent_s)
        self.state = replace(self.state, failsafe=np.zeros(self.layout.n_servers, dtype=np.bool_))
        await self._send([], [self._silence_event(change)])

    def _silence_event(self, change: SourceChange) -> Event:
        return Event(
            ts=change.ts,
            kind=EventKind.CONTROL_FAILSAFE
            if change.is_silent
            else EventKind.CONTROL_FAILSAFE_CLEARED,
            entity=self.entity,
            severity=Severity.CRITICAL if change.is_silent else Severity.INFO,
            attributes={
                "reason": Reason.TELEMETRY_LOST.label,
                "source": change.source,
                "silent_s": round(change.silent_s, 3),
                "last_sample_ms": change.last_sample_ms,
                "fan_level": MAX_LEVEL if change.is_silent else None,
                "issued_by": "controller",
            },
        )

    @property
    def is_source_silent(self) -> bool:
        """The source has sent nothing for the silence timeout (fans held in fail-safe)."""
        return self.watch is not None and self.watch.is_silent(self.source)

    async def decide(self) -> None:
        """One step on the latest observation; fail-safe if the step raises."""
        obs = self.view.observation()
        if obs.now_ms == NEVER:
            return
        try:
            decision = self._step(self.state, obs, self.policy)
        except Exception as exc:
            await self._fail_safe(obs.now_ms, exc)
            return
        self.n_steps += 1
        events = list(decision.events)
        if self.is_in_error:
            self.is_in_error = False
            log.info("fan controller recovered; auto control resumes")
            events.append(self._error_event(EventKind.CONTROL_FAILSAFE_CLEARED, obs.now_ms, None))
        self.state = decision.state
        await self._send(decision.commands, events)

    async def _fail_safe(self, now_ms: int, exc: Exception) -> None:
        self.n_errors += 1
        events: list[Event] = []
        if not self.is_in_error:
            log.exception("fan controller step failed; fans not in manual mode go high")
            events.append(self._error_event(EventKind.CONTROL_FAILSAFE, now_ms, exc))
        self.is_in_error = True
        self.state, commands = fail_safe(self.state, now_ms)
        await self._send(commands, events)

    def _error_event(self, kind: EventKind, now_ms: int, exc: Exception | None) -> Event:
        failing = kind is EventKind.CONTROL_FAILSAFE
        attributes: dict[str, Any] = {
            "reason": Reason.CONTROLLER_ERROR.label,
            "fan_level": 3 if failing else None,
            "issued_by": "controller",
        }
        if exc is not None:
            attributes["error"] = f"{type(exc).__name__}: {exc}"
        return Event(
            ts=now_ms,
            kind=kind,
            entity=self.entity,
            severity=Severity.CRITICAL if failing else Severity.INFO,
            attributes=attributes,
        )

    async def _send(self, commands: Sequence[Command], events: Sequence[Event]) -> None:
        for command in commands:
            await self.bus.publish(subjects.commands(self.source), command)
        self.n_commands += len(commands)
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)

    # --- operators -------------------------------------------------------------------------

    async def set_mode(self, entity: str, mode: Any, by: str) -> None:
        """Put every fan at or below `entity` in "auto" or "manual"; CommandRejected if the
        mode or the entity is unknown (then nothing changes)."""
        parsed = parse_mode(mode)
        now = self.view.now_ms
        fans = self.layout.fans_under(entity)
        self.state = with_mode(
            self.state, entity, parsed, now, min_level=self.policy.safety.min_auto_level
        )
        event = mode_event(entity, parsed, len(fans), by, now)
        await self.bus.publish(subjects.events(event.kind), event)

    async def set_level(self, target: str, level: Any, by: str) -> None:
        """Set a fan or a server's fans by hand; they go to manual mode. CommandRejected for an
        unknown target or a level outside 0..3 / off..high (then nothing changes)."""
        parsed = parse_level(level)
        now = self.view.now_ms
        command = manual_command(self.state, target, parsed, by, now)
        fans = self.layout.fans_of(target)
        was_auto = bool((~self.state.manual[fans]).any())
        self.state = with_manual_level(self.state, target)
        if was_auto:
            event = mode_event(target, FanMode.MANUAL, len(fans), by, now)
            await self.bus.publish(subjects.events(event.kind), event)
        await self.bus.publish(subjects.commands(self.source), command)

    async def _obey(self, orders: Subscription) -> None:
        async for _subject, command in orders:
            try:
                await self.handle(command)
            except CommandRejected as exc:
                event = Event(
                    ts=self.view.now_ms,
                    kind=EventKind.COMMAND_REJECTED,
                    entity=command.target,
                    severity=Severity.WARNING,
                    attributes={
                        "action": str(command.action),
                        "reason": str(exc),
                        "issued_by": command.issued_by,
                    },
                )
                await self.bus.publish(subjects.events(event.kind), event)

    async def handle(self, command: Command) -> None:
        """Apply a `fan.set_mode` or `fan.set_level` Command; CommandRejected otherwise."""
        if command.action == CommandAction.FAN_SET_MODE:
            await self.set_mode(command.target, command.params.get("mode"), command.issued_by)
        elif command.action == CommandAction.FAN_SET_LEVEL:
            if "level" not in command.params:
                raise CommandRejected('fan.set_level needs params {"level": 0..3}')
            await self.set_level(command.target, command.params["level"], command.issued_by)
        else:
            raise CommandRejected(
                f"the fan controller cannot do {command.action!r}; it accepts "
                f"{[CommandAction.FAN_SET_MODE.value, CommandAction.FAN_SET_LEVEL.value]}"
            )

    # --- reading ---------------------------------------------------------------------------

    def status(self) -> list[FanStatus]:
        """Every fan's mode, reported level, failure and fail-safe, in layout order."""
        s, layout = self.state, self.layout
        reported = s.reported_level.tolist()
        failed, manual = s.failed.tolist(), s.manual.tolist()
        failsafe = s.failsafe.tolist()
        return [
            FanStatus(
                fan=path,
                server=layout.server_paths[server],
                mode=(FanMode.MANUAL if manual[f] else FanMode.AUTO).value,
                level=None if reported[f] == NEVER else int(reported[f]),
                is_failed=bool(failed[f]),
                is_failsafe=bool(failsafe[server]),
            )
            for f, (path, server) in enumerate(
                zip(layout.fan_paths, layout.fan_server.tolist(), strict=True)
            )
        ]
