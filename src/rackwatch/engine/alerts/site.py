"""The alerts and device states of a site run by workers, for a front end (`rackwatch serve`).

On a NATS bus the alert engines run in the `alerts` workers, one per partition; a front end
has none. It folds what they publish instead: the `alert.*` events into the open and recent
alerts (`views.AlertHistory`, the fold the alert history uses), `state.changed` into each
device's state (its reason, since when, and the maintenance that set it) and
`usage.changed` into busy/idle. At start it reads the same events back from the shared store
(`seed`, the last `SEED_DAYS`), then follows the bus (`fold`, fed by the front end).

It answers the read side of `AlertEngine` that GET /alerts and GET /states use, and
acknowledges through the workers (`acknowledge_many`: a command on `commands.alerts`, done
when their `alert.acknowledged` events come back). It is as
fresh as the events: a level that falls without an event (the engine makes none) shows the
level of the alert's last event, as the alert history does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rackwatch.bus import subjects
from rackwatch.engine.alerts.engine import ALERTS_COMMANDS
from rackwatch.engine.alerts.views import ALERT_EVENT_KINDS, AlertHistory
from rackwatch.engine.states import (
    DeviceState,
    Maintenance,
    Rollup,
    UsageStatus,
    details_of,
    rollup_states,
)
from rackwatch.errors import RackwatchError
from rackwatch.model import Command, CommandAction, Event, EventKind, Severity
from rackwatch.store.base import Store

log = logging.getLogger(__name__)

SEED_DAYS = 3
"""How far back a front end reads the alert and state events at start."""
SEED_MAX_EVENTS = 200_000
"""Alert events, and state and usage events, a start reads at most (the newest)."""
HEARD_FRESH_S = 1.0
"""How long the entities heard are reused (GET /states asks once per entity)."""
_DAY_MS = 86_400_000
_STATES = frozenset(str(state) for state in DeviceState)
_USAGES = frozenset(str(usage) for usage in UsageStatus)
_LEVELS = {"WARNING": Severity.WARNING, "CRITICAL": Severity.CRITICAL}
SITE_EVENT_KINDS = (
    *ALERT_EVENT_KINDS,
    str(EventKind.STATE_CHANGED),
    str(EventKind.USAGE_CHANGED),
)


IMPLIED_OK = "sends telemetry; no state change from the alert workers"
_ORDER = {kind: rank for rank, kind in enumerate(SITE_EVENT_KINDS)}
"""Within one instant: a fire before its escalation, acknowledgement and resolution."""


ACK_WAIT_S = 5.0
"""How long an acknowledgement waits for the alerts workers' confirmation."""
ACK_POLL_S = 0.02


class AckTimeout(RackwatchError, TimeoutError):
    """The alerts workers did not confirm an acknowledgement in time."""


@dataclass(frozen=True, slots=True)
class _State:
    state: DeviceState
    since_ts: int | None
    reason: str
    by: str | None


class SiteAlerts:
    """Open alerts, recent ones, device states and usage, folded from events (see above)."""

    def __init__(
        self,
        failure_rules: Collection[str] = (),
        *,
        history: int = 1000,
        heard: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        """`heard`: the entities sending telemetry now (the front end's live state). The alert
        workers publish a state when it changes, so an entity that has been OK all along has
        no event: one heard with none is OK."""
        self._heard = heard
        self._heard_cache: Collection[str] = frozenset()
        self._heard_at = -HEARD_FRESH_S
        self.publish: Callable[[str, Any], Awaitable[None]] | None = None
        """The bus's publish, for acknowledgements (set by the front end once connected)."""
        self._failure_rules = frozenset(failure_rules)
        self._alerts = AlertHistory(failure_rules, max_events=1 << 62)
        self._recent: deque[dict[str, Any]] = deque(maxlen=history)
        self._states: dict[str, _State] = {}
        self._usage: dict[str, UsageStatus] = {}
        self.n_events = 0

    # --- feeding --------------------------------------------------------------------------

    def seed(self, store: Store, now_ms: int) -> list[Event]:
        """Read the last days' alert, state and usage events from the store, and return
        them (oldest first). Blocking: call it from a worker thread, before `fold` is fed."""
        start = now_ms - SEED_DAYS * _DAY_MS
        end = 1 << 62  # a twin run faster than the wall clock stamps events ahead of it
        alert_events = store.events(start, end, kinds=ALERT_EVENT_KINDS, newest=SEED_MAX_EVENTS)
        kinds = (str(EventKind.STATE_CHANGED), str(EventKind.USAGE_CHANGED))
        state_events = store.events(start, end, kinds=kinds, newest=SEED_MAX_EVENTS)
        for name, found in (("alert", alert_events), ("state and usage", state_events)):
            if len(found) >= SEED_MAX_EVENTS:
                log.warning(
                    "more than %s %s events in %d days: the newest only are read (an alert "
                    "opened before them is not shown)",
                    f"{SEED_MAX_EVENTS:,}",
                    name,
                    SEED_DAYS,
                )
        read = sorted(
            [*alert_events, *state_events], key=lambda e: (e.ts, _ORDER.get(str(e.kind), 9))
        )
        self.fold(read)
        return read

    def fold(self, events: Iterable[Event]) -> None:
        """Apply events in time order (any kind: those that say nothing here are skipped)."""
        for event in events:
            kind = str(event.kind)
            if kind in ALERT_EVENT_KINDS:
                self._alerts.add([event])
                alert_id = str(event.attributes.get("alert_id"))
                alert = self._alerts.alerts.get(alert_id)
                if alert is not None:
                    self._recent.append(dict(alert))
                    if alert["status"] == "resolved":  # kept in `_recent` only: bounded
                        del self._alerts.alerts[alert_id]
            elif kind == EventKind.STATE_CHANGED:
                self._fold_state(event)
            elif kind == EventKind.USAGE_CHANGED:
                to = event.attributes.get("to")
                if isinstance(to, str) and to in _USAGES:
                    self._usage[event.entity] = UsageStatus(to)
            else:
                continue
            self.n_events += 1

    def _fold_state(self, event: Event) -> None:
        to = event.attributes.get("to")
        if not isinstance(to, str) or to not in _STATES:
            return
        by = event.attributes.get("by")
        self._states[event.entity] = _State(
            DeviceState(to),
            event.ts,
            str(event.attributes.get("reason", "")),
            str(by) if by is not None else None,
        )

    # --- the read side of AlertEngine -----------------------------------------------------

    def open_alert_dicts(self) -> list[dict[str, Any]]:
        """Alerts firing or acknowledged, oldest first (`Alert.as_dict()`'s shape)."""
        found = self._alerts.alerts.values()  # resolved ones are not kept
        return sorted(found, key=lambda a: (a["fired_ts_ms"], a["rule"], a["entity"]))

    def recent_alerts(self, since_ms: int) -> list[dict[str, Any]]:
        """The alerts' changes newer than `since_ms`, oldest first (the last `history`)."""
        return [dict(a) for a in self._recent if a["ts_ms"] > since_ms]

    # --- acknowledgement, through the alerts workers ------------------------------------

    async def acknowledge_many(
        self, alert_ids: Sequence[str], by: str, *, wait_s: float = ACK_WAIT_S
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Acknowledge the open alerts of `alert_ids` as the engine does, through the alerts
        workers: an `alert.acknowledge` command on `commands.alerts`, then wait for each
        alert's `alert.acknowledged` event to be folded here. Returns the alerts now
        acknowledged (in the order asked) and the ids of no open alert. AckTimeout when the
        workers do not confirm within `wait_s`; RuntimeError when no bus is attached."""
        if not by.strip():
            raise ValueError("say who acknowledges the alerts (a user or service name)")
        if self.publish is None:
            raise RuntimeError("no bus attached: acknowledgements cannot reach the workers")
        opened = {a["id"] for a in self.open_alert_dicts()}
        asked = list(dict.fromkeys(alert_ids))
        wanted = [i for i in asked if i in opened]
        not_found = [i for i in asked if i not in opened]
        pending = [i for i in wanted if self._alerts.alerts[i]["status"] != "acknowledged"]
        if pending:
            command = Command(
                ALERTS_COMMANDS, CommandAction.ALERT_ACKNOWLEDGE, {"ids": pending}, issued_by=by
            )
            await self.publish(subjects.commands(ALERTS_COMMANDS), command)
            try:
                async with asyncio.timeout(wait_s):
                    while any(self._status(i) == "firing" for i in pending):
                        await asyncio.sleep(ACK_POLL_S)
            except TimeoutError:
                waiting = [i for i in pending if self._status(i) == "firing"]
                raise AckTimeout(
                    f"the alerts workers did not confirm the acknowledgement of {len(waiting)} "
                    f"alert(s) within {wait_s:g} s (first: {waiting[0]}): check that a "
                    "`rackwatch worker --role alerts` runs for every partition"
                ) from None
        done = [dict(a) for i in wanted if (a := self._alerts.alerts.get(i)) is not None]
        # resolved meanwhile: no longer open, as the engine would say
        gone = [i for i in wanted if i not in self._alerts.alerts]
        return done, not_found + gone

    def _status(self, alert_id: str) -> str | None:
        found = self._alerts.alerts.get(alert_id)
        return None if found is None else str(found["status"])

    def failure_rules(self) -> frozenset[str]:
        return self._failure_rules

    def states(self) -> dict[str, DeviceState]:
        found = dict.fromkeys(self._heard_now(), DeviceState.OK)
        found.update((entity, state.state) for entity, state in self._states.items())
        return dict(sorted(found.items()))

    def rollups(self) -> dict[str, Rollup]:
        alerts = self.open_alert_dicts()
        levels = ((a["entity"], _LEVELS.get(a["level"], Severity.INFO)) for a in alerts)
        return rollup_states(self.states(), levels)

    def state_details(self, entity: str) -> dict[str, Any] | None:
        found = self._states.get(entity)
        if found is None:
            if entity not in self._heard_now():
                return None
            found = _State(DeviceState.OK, None, IMPLIED_OK, None)
        return details_of(
            entity, found.state, found.reason, found.since_ts, self.maintenance_of(entity)
        )

    def _heard_now(self) -> Collection[str]:
        now = time.monotonic()
        if now - self._heard_at > HEARD_FRESH_S:
            self._heard_cache, self._heard_at = self._heard(), now
        return self._heard_cache

    def maintenance_of(self, entity: str) -> Maintenance | None:
        """The maintenance an entity's state says it is in (who, why, since when)."""
        found = self._states.get(entity)
        if found is None or found.state is not DeviceState.MAINTENANCE:
            return None
        return Maintenance(found.by or "", found.reason, found.since_ts or 0)

    def usage(self) -> dict[str, UsageStatus]:
        return dict(self._usage)
