"""Fan-out of notifications to notifiers, each on its own lane.

Every notifier gets a bounded queue and one task that sends from it with a timeout, so a slow,
hanging or failing notifier never delays the others nor the alert engine (`dispatch` never
blocks: when a lane is full its oldest notification is dropped and counted). Each lane counts
what it sent, what failed (an error or the timeout), what it dropped and what its filter
refused. A lane logs its first failure, and once "recovered", rather than every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from rackwatch.engine.notifiers.base import Notification, Notifier
from rackwatch.engine.notifiers.filters import NotificationFilter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NotifierRoute:
    """A notifier with its filter, its time limit per notification and its queue bound."""

    notifier: Notifier
    filter: NotificationFilter = field(default_factory=NotificationFilter)
    timeout_s: float = 30.0
    max_pending: int = 1000

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_pending < 1:
            raise ValueError(
                f"notifier {self.notifier.name!r}: timeout_s must be > 0 and max_pending >= 1"
            )


@dataclass(slots=True)
class NotifierStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    filtered: int = 0


class _Lane:
    def __init__(self, route: NotifierRoute) -> None:
        self.route = route
        self.stats = NotifierStats()
        self.queue: deque[Notification] = deque()
        self.ready = asyncio.Event()
        self.closing = False
        self.is_failing = False
        self.task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.route.notifier.name

    def offer(self, notification: Notification) -> None:
        if not self.route.filter.accepts(notification):
            self.stats.filtered += 1
            return
        if len(self.queue) >= self.route.max_pending:
            self.queue.popleft()
            self.stats.dropped += 1
        self.queue.append(notification)
        self.ready.set()

    async def work(self) -> None:
        while True:
            while self.queue:
                await self._send(self.queue.popleft())
            if self.closing:
                return
            self.ready.clear()
            await self.ready.wait()

    async def _send(self, notification: Notification) -> None:
        try:
            await asyncio.wait_for(
                self.route.notifier.send(notification), timeout=self.route.timeout_s
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.failed += 1
            if not self.is_failing:
                self.is_failing = True
                reason = (
                    f"no answer within {self.route.timeout_s:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                log.warning(
                    "notifier %s failed (%s); further failures are counted, not logged",
                    self.name,
                    reason,
                )
            return
        self.stats.sent += 1
        if self.is_failing:
            self.is_failing = False
            log.info("notifier %s recovered", self.name)


class Dispatcher:
    """Delivers each notification to every route whose filter accepts it.

    `start()` inside the event loop, `dispatch()` from anywhere in it, `close()` at the end
    (sends what is queued, up to `drain_timeout_s`, then closes the notifiers).
    """

    def __init__(self, routes: Sequence[NotifierRoute]) -> None:
        names = [route.notifier.name for route in routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"notifier names must be unique; give a name to each of {repeated}")
        self._lanes = [_Lane(route) for route in routes]

    def start(self) -> None:
        for lane in self._lanes:
            if lane.task is None:
                lane.task = asyncio.create_task(lane.work(), name=f"notifier-{lane.name}")

    def dispatch(self, notification: Notification) -> None:
        for lane in self._lanes:
            lane.offer(notification)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per notifier: sent, failed, dropped, filtered."""
        return {lane.name: asdict(lane.stats) for lane in self._lanes}

    async def idle(self) -> None:
        """Wait until every queue is empty and nothing is being sent (tests, shutdown)."""
        while any(lane.queue or lane.ready.is_set() for lane in self._lanes):
            await asyncio.sleep(0.001)

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        tasks = []
        for lane in self._lanes:
            lane.closing = True
            lane.ready.set()
            if lane.task is not None:
                tasks.append(lane.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for lane in self._lanes:
            try:
                await lane.route.notifier.close()
            except Exception:
                log.exception("closing notifier %s failed", lane.name)
