"""Fan-out of notifications to notifiers, each on its own lane.

Every notifier gets a bounded queue and one task that sends from it with a timeout, so a slow,
hanging or failing notifier never delays the others nor the alert engine (`dispatch` never
blocks: when a lane is full its oldest notification is dropped and counted). Each lane counts
what it sent, what failed (an error or the timeout), what it dropped and what its filter
refused. A lane logs its first failure, and once "recovered", rather than every failure.

Stop (`close`) is bounded: the lanes get `drain_s` seconds to deliver what is queued. A lane
whose send fails during the drain stops there (its endpoint is down: trying the rest would
only burn the deadline), and a send still running at the deadline is cancelled. Whatever is
left is written to the `spool` (notifications-spool.jsonl in the data directory) and counted
as `spooled`; `restore()` at the next start puts it back in the queues (`restored`), oldest
first. Without a spool, or if it cannot be written, the leftovers are counted as `dropped` and
logged: nothing vanishes without a trace. Delivery is at least once: a send cancelled at the
deadline may have reached its endpoint and is sent again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from rackwatch.bus.queue import DropOldestQueue
from rackwatch.engine.notifiers.base import Notification, Notifier
from rackwatch.engine.notifiers.filters import NotificationFilter
from rackwatch.engine.notifiers.spool import NotificationSpool, Spooled

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
    """Counts since start; `Dispatcher.stats` adds `retries` (the notifier's own re-attempts,
    e.g. the webhook's) and `pending` (queued now)."""

    sent: int = 0
    failed: int = 0
    """Sends that raised or timed out (after the notifier's own retries)."""
    dropped: int = 0
    """Lost: pushed out of a full queue, or left at stop with no spool to keep them."""
    filtered: int = 0
    spooled: int = 0
    """Left undelivered at stop and kept in the spool for the next start."""
    restored: int = 0
    """Taken back from the spool at start (sent again, or counted again if not)."""


class _Lane:
    def __init__(self, route: NotifierRoute) -> None:
        self.route = route
        self.stats = NotifierStats()
        self.queue: DropOldestQueue[Notification] = DropOldestQueue(route.max_pending)
        self.sending = False
        self.is_failing = False
        self.task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.route.notifier.name

    def offer(self, notification: Notification) -> bool:
        """Queue it if the filter accepts it (the oldest goes when the queue is full)."""
        if not self.route.filter.accepts(notification):
            self.stats.filtered += 1
            return False
        if self.queue.put(notification):
            self.stats.dropped += 1
        return True

    @property
    def closing(self) -> bool:
        return self.queue.closed

    async def work(self) -> None:
        """Send until the queue is closed and empty; at stop, end at the first failure (the
        rest is for the spool)."""
        while (notification := await self.queue.get()) is not None:
            self.sending = True
            try:
                if not await self._send(notification) and self.closing:
                    return
            finally:
                self.sending = False

    async def _send(self, notification: Notification) -> bool:
        """Deliver one; False if it failed. At stop, a failed or cancelled send goes back to
        the head of the queue (for the spool)."""
        try:
            await asyncio.wait_for(
                self.route.notifier.send(notification), timeout=self.route.timeout_s
            )
        except asyncio.CancelledError:
            self.queue.put_back(notification)  # only cancelled at the stop deadline
            raise
        except Exception as exc:
            self.stats.failed += 1
            if self.closing:
                self.queue.put_back(notification)
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
            return False
        self.stats.sent += 1
        if self.is_failing:
            self.is_failing = False
            log.info("notifier %s recovered", self.name)
        return True

    def counts(self) -> dict[str, int]:
        retries = getattr(self.route.notifier, "n_retries", 0)
        return {
            **asdict(self.stats),
            "retries": retries if isinstance(retries, int) else 0,
            "pending": len(self.queue),
        }


class Dispatcher:
    """Delivers each notification to every route whose filter accepts it.

    `await restore()` then `start()` inside the event loop, `dispatch()` from anywhere in it,
    `close()` at the end (sends what is queued for up to `drain_s`, spools the rest, then
    closes the notifiers).
    """

    def __init__(
        self,
        routes: Sequence[NotifierRoute],
        *,
        spool: NotificationSpool | None = None,
        drain_s: float = 5.0,
    ) -> None:
        names = [route.notifier.name for route in routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"notifier names must be unique; give a name to each of {repeated}")
        if not drain_s >= 0:
            raise ValueError(f"drain_s must be >= 0, got {drain_s}")
        self._lanes = [_Lane(route) for route in routes]
        self.spool = spool
        self.drain_s = drain_s
        self.n_spool_skipped = 0
        """Spooled notifications not restored: unreadable, over the bound, or for a notifier
        that is no longer configured."""

    async def restore(self) -> None:
        """Queue what the previous stop spooled (before anything new), and remove the file.
        An unreadable spool is logged and left alone."""
        if self.spool is None:
            return
        try:
            loaded = await asyncio.to_thread(self.spool.load)
        except OSError as exc:
            log.error("cannot read the notification spool %s: %s", self.spool.path, exc)
            return
        lanes = {lane.name: lane for lane in self._lanes}
        orphans = 0
        for name, notification in loaded.items:
            lane = lanes.get(name)
            if lane is None:
                orphans += 1
            elif lane.offer(notification):
                lane.stats.restored += 1
        self.n_spool_skipped += loaded.n_skipped + orphans
        if orphans:
            log.warning(
                "dropped %d spooled notifications for notifiers that are no longer configured",
                orphans,
            )
        if loaded.items:
            log.info("%d notifications from the last stop queued again", len(loaded.items))

    def start(self) -> None:
        for lane in self._lanes:
            if lane.task is None:
                lane.task = asyncio.create_task(lane.work(), name=f"notifier-{lane.name}")

    def dispatch(self, notification: Notification) -> None:
        for lane in self._lanes:
            lane.offer(notification)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per notifier: sent, failed, retries, dropped, filtered, spooled, restored, pending."""
        return {lane.name: lane.counts() for lane in self._lanes}

    async def idle(self) -> None:
        """Wait until every queue is empty and nothing is being sent (tests, shutdown)."""
        while any(lane.queue or lane.sending for lane in self._lanes):
            await asyncio.sleep(0.001)

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Deliver for up to `drain_timeout_s` (default `drain_s`), keep the rest in the spool
        (or count it dropped), then close every notifier."""
        deadline_s = self.drain_s if drain_timeout_s is None else drain_timeout_s
        tasks = []
        for lane in self._lanes:
            lane.queue.close()
            if lane.task is not None:
                tasks.append(lane.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._keep_leftovers()
        for lane in self._lanes:
            try:
                await lane.route.notifier.close()
            except Exception:
                log.exception("closing notifier %s failed", lane.name)

    async def _keep_leftovers(self) -> None:
        """Spool what no lane delivered; count it dropped where it cannot be kept."""
        left = [(lane, lane.queue.clear()) for lane in self._lanes if lane.queue]
        if not left:
            return
        if self.spool is not None:
            items: list[Spooled] = [(lane.name, n) for lane, kept in left for n in kept]
            newest = items  # lane by lane, each in its queue's order
            if len(items) > self.spool.max_items:
                newest = sorted(items, key=lambda item: item[1].ts_ms)[-self.spool.max_items :]
            over = len(items) - len(newest)
            try:
                over += await asyncio.to_thread(self.spool.save, newest)
            except OSError as exc:
                log.error("cannot write the notification spool %s: %s", self.spool.path, exc)
            else:
                spooled = {(name, id(n)) for name, n in newest}  # one object goes to many lanes
                for lane, kept in left:
                    n_kept = sum((lane.name, id(n)) in spooled for n in kept)
                    lane.stats.spooled += n_kept
                    lane.stats.dropped += len(kept) - n_kept
                if over:
                    log.warning("the notification spool is full: dropped the %d oldest", over)
                log.warning(
                    "%d notifications not delivered before stop were kept in %s for the next start",
                    len(newest),
                    self.spool.path,
                )
                return
        for lane, kept in left:
            lane.stats.dropped += len(kept)
            log.warning(
                "notifier %s: %d notifications not delivered before stop were dropped",
                lane.name,
                len(kept),
            )
