"""The alert engine: a bus consumer that turns telemetry into alerts, device states and
notifications.

Wiring (app.py)::

    engine = AlertEngine(bus, registry, rules, routes, cooldown_s=300)
    task = asyncio.create_task(engine.run())   # consumes `telemetry.>` until the bus closes
    await engine.ready.wait()                  # subscribed: publishing may start

For the API::

    engine.active_alerts() -> list[Alert]            # firing + acknowledged (Alert.as_dict())
    await engine.acknowledge(alert_id, by) -> Alert  # AlertNotFound if not open
    await engine.acknowledge_many(ids, by) -> AckResult  # acknowledged, not_found
    engine.recent_alerts(since_ms) -> list[dict]     # the WebSocket `alerts` array
    engine.states() -> dict[str, DeviceState]        # entity -> ok/warning/.../unknown
    engine.rollups() -> dict[str, Rollup]            # worst of own and parts', alerts counted
    engine.state_details(entity) -> dict | None      # state, reason, since, maintenance
    engine.usage() -> dict[str, UsageStatus]         # server -> busy/idle
    await engine.set_maintenance(entity, by, reason) / await engine.clear_maintenance(entity, by)
    engine.notifier_stats() -> {name: {sent, failed, retries, dropped, ..., pending}}
    engine.silent_sources() -> list[str]              # silent on the wall clock now

Every change is published as an `Event` on `events.<kind>` (`alert.fired`, `alert.escalated`,
`alert.acknowledged`, `alert.resolved`, `state.changed`, `usage.changed`), which the store
writer keeps. The telemetry rackwatch derives itself (`derived_sources`: the intelligence's
health, anomaly and time-to-failure samples) goes through the rules only: see `__init__`.
The work per batch is `process(batch)`: synchronous, no I/O (rules, lifecycle, states); `run`
only awaits the bus, and notifiers run on their own lanes (see notifiers/dispatch.py). Time
is the samples' time: events carry the sample timestamps, and acknowledgements and
maintenance are stamped with the newest sample timestamp seen (the injected `clock` only
before any telemetry).

The samples' clock stops when every source stops, so with a `silence` policy a watchdog on the
wall clock (`states.SourceWatch`) stands beside it: a source that has sent nothing for
`silence.timeout_s` wall seconds (its own timeout in `source_timeouts`: the real machines'
sources) gets a `source.unavailable` event (and notification), and every entity it feeds
becomes UNKNOWN; its next batch brings `source.recovered` and the states back. Only sources
heard at least once are watched (before that, their devices are UNKNOWN anyway). At stop, the
notifiers get `drain_s` seconds to deliver what is queued; the rest goes to the `spool` file,
and the next start sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rackwatch.bus import Bus, Subscription, subjects
from rackwatch.engine.alerts.lifecycle import Alert, AlertBook, AlertChange, AlertNotFound
from rackwatch.engine.alerts.rules import Rule, RuleEvaluator, Transition
from rackwatch.engine.notifiers import (
    Dispatcher,
    Notification,
    NotificationSpool,
    Notifier,
    NotifierRoute,
)
from rackwatch.engine.states import (
    Condition,
    DeviceState,
    DeviceStates,
    Maintenance,
    Rollup,
    SilencePolicy,
    SourceChange,
    SourceWatch,
    StateChange,
    UsageStatus,
    UsageTracker,
    rollup_states,
    sleep_until_silence,
)
from rackwatch.model import (
    Batch,
    Command,
    CommandAction,
    Event,
    EventKind,
    SeriesRegistry,
    Severity,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AckResult:
    """What `AlertEngine.acknowledge_many` did."""

    acknowledged: list[Alert]
    """Open alerts now acknowledged (also those that already were), in the order asked."""
    not_found: list[str]
    """Ids of no open alert (resolved meanwhile, or never known)."""


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
        silence: SilencePolicy | None = None,
        source_timeouts: Mapping[str, float] | None = None,
        spool: Path | NotificationSpool | None = None,
        drain_s: float = 5.0,
        derived_sources: Sequence[str] = (),
        derived_stale_after_s: float | None = 300.0,
        publishes: bool = True,
    ) -> None:
        """`source_timeouts`: wall seconds after which a source that runs on the wall clock
        (this host, agents, scrapes) counts as silent, and an entity it stopped sending
        UNKNOWN; for those sources, in place of `silence` and `unknown_after_s`.
        `derived_sources`: sources whose telemetry rackwatch computes itself
        (`telemetry.intelligence`: `health_score`, `anomaly_score`,
        `time_to_failure_seconds`). Their samples are evaluated by the threshold, ratio and
        rate rules on those metrics, but they are not a device speaking: they never keep an
        entity alive or move a clock, absent rules ignore them, they are not watched for
        silence, they feed no usage, and their alerts set no device state (the health counts
        device states: a health alert setting one would hold itself up).
        `derived_stale_after_s`: a derived series that stops for this long while its entity's
        other derived series go on was withdrawn (a fan's failure prediction), and the levels
        it held clear (`RuleEvaluator`).
        `publishes`: False makes a shadow engine, which keeps alerts and states for the
        process that reads them (a detect worker's health) while the alert workers own the
        events and the notifications: it publishes nothing, and notifies nothing."""
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.bus = bus
        self.registry = registry
        self.publishes = publishes
        if not publishes:
            notifiers, spool = (), None
        self.evaluator = RuleEvaluator(rules, registry, derived_stale_after_s=derived_stale_after_s)
        self.book = AlertBook(cooldown_ms=round(cooldown_s * 1000), history=history)
        timeouts = dict(source_timeouts or {})
        self.devices = DeviceStates(
            registry, unknown_after_s=unknown_after_s, unknown_after_s_of=timeouts, tracked=tracked
        )
        self.usage_tracker = UsageTracker(
            registry, busy_at_ratio=busy_at_ratio, idle_below_ratio=idle_below_ratio
        )
        routes = [n if isinstance(n, NotifierRoute) else NotifierRoute(n) for n in notifiers]
        if isinstance(spool, Path):
            spool = NotificationSpool(spool)
        self.dispatcher = Dispatcher(routes, spool=spool, drain_s=drain_s)
        self.watch = None
        if silence is not None:
            own = {
                source: SilencePolicy(timeout_s, 1.0, silence.monotonic, silence.sleep)
                for source, timeout_s in timeouts.items()
            }
            self.watch = SourceWatch(silence, own)
        """Wall-clock silence of each source heard (None: not watched)."""
        self.ready = asyncio.Event()
        self.n_batches = 0
        self.derived_sources = frozenset(derived_sources)
        self._max_pending = max_pending
        self._clock = clock

    # --- async shell ----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume telemetry until the bus closes; then let the notifiers finish (bounded).

        Notifications spooled by the previous stop are queued first, before any new one."""
        await self.dispatcher.restore()
        self.dispatcher.start()
        try:
            async with self.bus.subscribe(
                f"{subjects.TELEMETRY}.>", max_pending=self._max_pending
            ) as telemetry:
                self.ready.set()
                watchdog = None
                if self.watch is not None:
                    watchdog = asyncio.create_task(self._watch(self.watch, telemetry))
                try:
                    prefix = f"{subjects.TELEMETRY}."
                    async for subject, batch in telemetry:
                        source = subject.removeprefix(prefix)
                        # a derived source is not watched: its silence is no device's
                        events = (
                            [] if source in self.derived_sources else self._heard(source, batch)
                        )
                        await self._publish(events + self.process(batch, source=source))
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await watchdog
        finally:
            await self.dispatcher.close()

    def _heard(self, source: str, batch: Batch) -> list[Event]:
        """A batch came from `source`: its recovery event if it had gone silent."""
        if self.watch is None:
            return []
        newest = int(batch.ts.max()) if len(batch) else None
        change = self.watch.heard(source, self.watch.policy.monotonic(), newest)
        if change is None:
            return []
        self.dispatcher.dispatch(source_notification(change))
        return [change.event()]

    async def _watch(self, watch: SourceWatch, telemetry: Subscription) -> None:
        """Wake at each source's silence deadline; batches queued for this engine count as
        heard (the engine is behind, the source is not silent)."""
        while True:
            await sleep_until_silence(watch)
            now = watch.policy.monotonic()
            if telemetry.pending:
                watch.postpone(now)
                continue
            await self._publish(self.sources_silent(watch.check(now, fallback_ms=self.now_ms())))

    def sources_silent(self, changes: Sequence[SourceChange]) -> list[Event]:
        """Act on sources gone silent: their event and notification, their entities UNKNOWN."""
        events: list[Event] = []
        for change in changes:
            events.append(change.event())
            self.dispatcher.dispatch(source_notification(change))
            reason = f"source {change.source} sent nothing for {change.silent_s:.0f} s (wall clock)"
            for state in self.devices.source_silent(change.source, change.ts, reason):
                events.append(state.event())
        return events

    async def _publish(self, events: list[Event]) -> None:
        if not self.publishes:
            return
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)

    # --- pure core ------------------------------------------------------------------------

    def process(self, batch: Batch, *, source: str | None = None) -> list[Event]:
        """Evaluate one batch: the events to publish, in time order. Notifications are
        queued on the dispatcher as a side effect (they go out once it is started).
        `source` names where it came from (device states remember whose entities are whose;
        a derived source's batch only goes through the rules: `_process_derived`)."""
        self.n_batches += 1
        if source is not None and source in self.derived_sources:
            return self._process_derived(batch, source)
        state_changes: list[StateChange] = list(self.devices.observe(batch, source))
        events: list[Event] = []
        for tr in self.evaluator.evaluate(batch, source or ""):
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

    def _process_derived(self, batch: Batch, source: str) -> list[Event]:
        """Rules only: no device state observes it (an entity is not alive because rackwatch
        computed something about it), no usage, and the alerts raise no device condition: a
        device's state says what its own telemetry says, and the health score counts device
        states (a health rule's alert lowering the health it watches would hold itself up).
        Maintenance still suppresses the notifications."""
        events: list[Event] = []
        for tr in self.evaluator.evaluate(batch, source, derived=True):
            change = self.book.apply(tr, is_suppressed=self.devices.in_maintenance(tr.entity))
            if change is not None:
                self._emit(change, events)
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

    def open_alert_dicts(self) -> list[dict[str, Any]]:
        """`active_alerts` as JSON-ready dicts (GET /alerts)."""
        return [alert.as_dict() for alert in self.active_alerts()]

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

    async def acknowledge_many(self, alert_ids: Sequence[str], by: str) -> AckResult:
        """Acknowledge each open alert of `alert_ids` as `acknowledge` does (one
        `alert.acknowledged` event per alert not acknowledged before; again: no event). Ids
        of no open alert are returned apart; a repeated id counts once. Cost: a dict lookup
        per id, then one publish per event."""
        if not by.strip():
            raise ValueError("say who acknowledges the alerts (a user or service name)")
        now = self.now_ms()
        done: list[Alert] = []
        not_found: list[str] = []
        events: list[Event] = []
        for alert_id in dict.fromkeys(alert_ids):  # first occurrence, in order
            try:
                change = self.book.acknowledge(alert_id, by, now)
            except AlertNotFound:
                not_found.append(alert_id)
                continue
            if change is not None:
                events.append(change.event())
            alert = self.book.get(alert_id)
            assert alert is not None
            done.append(alert)
        await self._publish(events)
        return AckResult(done, not_found)

    async def obey(self) -> None:
        """Apply the acknowledgements front ends send on `commands.alerts` (a site run by
        workers, docs/SCALE.md) until the bus closes: each engine acknowledges the alerts it
        holds open, and its `alert.acknowledged` events tell the front end it is done. A
        command that is not one is logged and skipped."""
        async with self.bus.subscribe(subjects.commands(ALERTS_COMMANDS)) as commands:
            async for _subject, command in commands:
                ids = acknowledged_ids(command)
                if ids is None:
                    log.warning("not an acknowledgement, skipped: %.200r", command)
                    continue
                await self.acknowledge_many(ids, command.issued_by)

    def states(self) -> dict[str, DeviceState]:
        return self.devices.states()

    def rollups(self) -> dict[str, Rollup]:
        """Every entity's roll-up (its state, the worst under it, its open alerts counted),
        racks and clusters included: see `states.rollup_states`."""
        return rollup_states(
            self.devices.states(), ((a.entity, a.severity) for a in self.book.open_alerts())
        )

    def maintenance_of(self, entity: str) -> Maintenance | None:
        """The maintenance covering `entity` (its own or an ancestor's), if any."""
        return self.devices.maintenance_of(entity)

    def failure_rules(self) -> frozenset[str]:
        """Names of the rules whose alerts make their entity FAILED (`is_failure`)."""
        return frozenset(rule.name for rule in self.evaluator.rules if rule.is_failure)

    def state_details(self, entity: str) -> dict[str, Any] | None:
        return self.devices.details(entity)

    def is_reporting(self, entity: str) -> bool | None:
        """Whether `entity` sends telemetry now, in maintenance too (None: never heard)."""
        return self.devices.is_reporting(entity)

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
        """Per notifier: sent, failed, retries, dropped, filtered, spooled, restored, pending."""
        return self.dispatcher.stats()

    def silent_sources(self) -> list[str]:
        """Sources silent on the wall clock right now (empty when not watched)."""
        return [] if self.watch is None else self.watch.silent_sources()

    def sources(self) -> dict[str, bool]:
        """Every source watched for silence, and whether it is silent now."""
        return {} if self.watch is None else self.watch.sources()


ALERTS_COMMANDS = "alerts"
"""`commands.alerts`: what front ends ask of the alerts workers."""
MAX_ACK_IDS = 1000
"""Alert ids one acknowledgement may name (as POST /alerts/ack)."""


def acknowledged_ids(command: Any) -> list[str] | None:
    """The alert ids of an `alert.acknowledge` command (None: not a well-formed one).

    >>> from rackwatch.model import Command
    >>> acknowledged_ids(Command("alerts", "alert.acknowledge", {"ids": ["a1"]}, "alice"))
    ['a1']
    >>> acknowledged_ids(Command("alerts", "alert.acknowledge", {"ids": "a1"}, "alice")) is None
    True
    """
    if not isinstance(command, Command) or command.action != CommandAction.ALERT_ACKNOWLEDGE:
        return None
    ids = command.params.get("ids")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_ACK_IDS:
        return None
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        return None
    if not isinstance(command.issued_by, str) or not command.issued_by.strip():
        return None
    return ids


def source_notification(change: SourceChange) -> Notification:
    """A source gone silent (critical) or back (`source.recovered`, shown as resolved)."""
    if change.is_silent:
        message = (
            f"No telemetry from source {change.source} for {change.silent_s:.0f} s "
            f"(wall clock; limit {change.timeout_s:g} s): its devices are UNKNOWN"
        )
    else:
        message = f"Telemetry from source {change.source} is back after {change.silent_s:.0f} s"
    key = f"source-silent\0{change.source}\0{change.last_sample_ms}"  # same id for both
    return Notification(
        kind=str(EventKind.SOURCE_UNAVAILABLE if change.is_silent else EventKind.SOURCE_RECOVERED),
        alert_id=hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16],
        ts_ms=change.ts,
        entity=change.source,
        rule="source-silent",
        metric="*",
        unit="s",
        level=Severity.CRITICAL,
        value=round(change.silent_s, 3),
        threshold=change.timeout_s,
        message=message,
    )


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
