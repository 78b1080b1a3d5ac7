"""The alert engine: a bus consumer that turns telemetry into alerts, device states and
notifications.

Wiring (app.py)::

    engine = AlertEngine(bus, registry, rules, routes, cooldown_s=300)
    task = asyncio.create_task(engine.run())   # consumes `telemetry.>` until the bus closes
    await engine.ready.wait()                  # subscribed: publishing may start

For the API::

    engine.active_alerts() -> list[Alert]            # firing + acknowledged (Alert.as_dict())
    await engine.acknowledge(alert_id, by) -> Alert  # AlertNotFound if not open
    engine.recent_alerts(since_ms) -> list[dict]     # the WebSocket `alerts` array (seed 001)
    engine.states() -> dict[str, DeviceState]        # entity -> ok/warning/.../unknown
    engine.state_details(entity) -> dict | None      # state, reason, since, maintenance
    engine.usage() -> dict[str, UsageStatus]         # server -> busy/idle
    await engine.set_maintenance(entity, by, reason) / await engine.clear_maintenance(entity, by)
    engine.notifier_stats() -> {name: {sent, failed, dropped, filtered}}

Every change is published as an `Event` on `events.<kind>` (`alert.fired`, `alert.escalated`,
`alert.acknowledged`, `alert.resolved`, `state.changed`, `usage.changed`), which the store
writer keeps. The work per batch is `process(batch)`: synchronous, no I/O (rules, lifecycle,
states); `run` only awaits the bus, and notifiers run on their own lanes (see
notifiers/dispatch.py). Time is the samples' time: events carry the sample timestamps, and
acknowledgements and maintenance are stamped with the newest sample timestamp seen (the
injected `clock` only before any telemetry).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from rackwatch.bus import Bus, subjects
from rackwatch.engine.alerts.lifecycle import Alert, AlertBook, AlertChange
from rackwatch.engine.alerts.rules import Rule, RuleEvaluator, Transition
from rackwatch.engine.notifiers import Dispatcher, Notification, Notifier, NotifierRoute
from rackwatch.engine.states import (
    Condition,
    DeviceState,
    DeviceStates,
    StateChange,
    UsageStatus,
    UsageTracker,
)
from rackwatch.model import Batch, Event, SeriesRegistry


class AlertEngine:
    """Alerts, device states and usage for one process; see the module docstring."""

    def __init__(
        self,
        bus: Bus,
        registry: SeriesRegistry,
        rules: Sequence[Rule],
        notifiers: Sequence[NotifierRoute | Notifier] = (),
        *,
        cooldown_s: float = 300.0,
        unknown_after_s: float = 60.0,
        busy_at_ratio: float = 0.5,
        idle_below_ratio: float = 0.3,
        tracked: Sequence[str] = ("**",),
        history: int = 1000,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.bus = bus
        self.registry = registry
        self.evaluator = RuleEvaluator(rules, registry)
        self.book = AlertBook(cooldown_ms=round(cooldown_s * 1000), history=history)
        self.devices = DeviceStates(registry, unknown_after_s=unknown_after_s, tracked=tracked)
        self.usage_tracker = UsageTracker(
            registry, busy_at_ratio=busy_at_ratio, idle_below_ratio=idle_below_ratio
        )
        routes = [n if isinstance(n, NotifierRoute) else NotifierRoute(n) for n in notifiers]
        self.dispatcher = Dispatcher(routes)
        self.ready = asyncio.Event()
        self.n_batches = 0
        self._max_pending = max_pending
        self._clock = clock

    # --- async shell ----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume telemetry until the bus closes; then let the notifiers finish (bounded)."""
        self.dispatcher.start()
        try:
            async with self.bus.subscribe(
                f"{subjects.TELEMETRY}.>", max_pending=self._max_pending
            ) as telemetry:
                self.ready.set()
                async for _subject, batch in telemetry:
                    await self._publish(self.process(batch))
        finally:
            await self.dispatcher.close()

    async def _publish(self, events: list[Event]) -> None:
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)

    # --- pure core ------------------------------------------------------------------------

    def process(self, batch: Batch) -> list[Event]:
        """Evaluate one batch: the events to publish, in time order. Notifications are
        queued on the dispatcher as a side effect (they go out once it is started)."""
        self.n_batches += 1
        state_changes: list[StateChange] = list(self.devices.observe(batch))
        events: list[Event] = []
        for tr in self.evaluator.evaluate(batch):
            change = self.book.apply(tr, is_suppressed=self.devices.in_maintenance(tr.entity))
            if change is not None:
                self._emit(change, events)
            state = self._condition(tr)
            if state is not None:
                state_changes.append(state)
        events.extend(change.event() for change in state_changes)
        events.extend(change.event() for change in self.usage_tracker.update(batch))
        events.sort(key=lambda e: e.ts)
        return events

    def _emit(self, change: AlertChange, events: list[Event]) -> None:
        events.append(change.event())
        if change.is_notified:
            self.dispatcher.dispatch(notification_of(change))

    def _condition(self, tr: Transition) -> StateChange | None:
        key = tr.rule.name
        if tr.level is None:
            return self.devices.clear_condition(tr.entity, key, tr.ts)
        condition = Condition(tr.level, tr.rule.is_failure, tr.message)
        return self.devices.raise_condition(tr.entity, key, condition, tr.ts)

    def now_ms(self) -> int:
        """The newest sample timestamp seen, or the clock before any telemetry."""
        now = self.evaluator.now_ms
        return now if now is not None else int(self._clock() * 1000)

    # --- queries and commands for the API -------------------------------------------------

    def active_alerts(self) -> list[Alert]:
        """Open alerts (firing or acknowledged), oldest first."""
        return self.book.open_alerts()

    def recent_alerts(self, since_ms: int) -> list[dict[str, Any]]:
        """Alert occurrences newer than `since_ms` as plain dicts with timestamp, entity,
        metric, value, threshold, level, status and message (the WebSocket `alerts` array)."""
        return self.book.recent(since_ms)

    async def acknowledge(self, alert_id: str, by: str) -> Alert:
        """Acknowledge an open alert (idempotent); AlertNotFound if it is not open."""
        change = self.book.acknowledge(alert_id, by, self.now_ms())
        if change is not None:
            await self._publish([change.event()])
        alert = self.book.get(alert_id)
        assert alert is not None
        return alert

    def states(self) -> dict[str, DeviceState]:
        return self.devices.states()

    def state_details(self, entity: str) -> dict[str, Any] | None:
        return self.devices.details(entity)

    def usage(self) -> dict[str, UsageStatus]:
        return self.usage_tracker.usage()

    async def set_maintenance(self, entity: str, by: str, reason: str = "") -> None:
        """Put `entity` and its components in maintenance: their alerts are not notified."""
        changes = self.devices.set_maintenance(entity, by, reason, self.now_ms())
        await self._publish([change.event() for change in changes])

    async def clear_maintenance(self, entity: str, by: str) -> None:
        """End the maintenance set on `entity`; KeyError if none was."""
        changes = self.devices.clear_maintenance(entity, by, self.now_ms())
        await self._publish([change.event() for change in changes])

    def notifier_stats(self) -> dict[str, dict[str, int]]:
        return self.dispatcher.stats()


def notification_of(change: AlertChange) -> Notification:
    a = change.alert
    return Notification(
        kind=str(change.kind),
        alert_id=a.id,
        ts_ms=a.ts,
        entity=a.entity,
        rule=a.rule,
        metric=a.metric,
        unit=a.unit,
        level=a.severity,
        value=a.value,
        threshold=a.threshold,
        message=a.message,
    )
