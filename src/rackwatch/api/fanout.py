"""WebSocket fan-out: one broadcaster, one bounded queue and one sender task per client.

The broadcaster (`Hub.run`) reads telemetry from the bus and, for each Batch, encodes one JSON
text per distinct subscription filter (a `Group`), not one per client: a thousand dashboards
on the room overview cost one encoding. Each group's series mask is computed once, when the
filter first appears (and extended when new series are registered), never per message.

Each `monitoring_data` also carries the alert occurrences (fired, escalated, resolved) that
the alert engine recorded since the group's previous message, under its entity glob. The
engine's bounded history is read at most once per batch (`recent_alerts`), and each group
remembers the last occurrence it passed on (a mark, not a time: sources whose clocks differ,
such as the twin running ahead and a real host, must not hide each other's alerts).

Texts go into each client's bounded queue; on overflow the oldest is dropped and counted
(`n_dropped`, exported as `rackwatch_ws_dropped_messages_total`). A sender task per client
(`Hub.pump`) writes its queue with a timeout; a client that does not take a message in time
is dropped (`ClientTooSlow`). Nothing here awaits a client on the broadcaster's path, so a
slow or stuck client never delays the others or the ingest.

"Taken" means taken off this server, not merely handed to the OS: a write completes as soon
as the kernel buffers it (megabytes per socket), so a client that stops reading would go on
"taking" messages for minutes. Where the connection can say how many of the bytes written to
it the peer has not acknowledged yet (`Backlog`: the transport's buffer plus the kernel's
send queue, see `ws.py`), the sender notes each message's end and the time it was written,
and the client is dropped once a message is still unacknowledged `send_timeout_s` later. A
client that stops reading is thus dropped about `send_timeout_s` after its receive window
fills (a few tens of kilobytes), and the bytes a stuck socket pins are bounded.

A client can also be closed by the server (`Hub.close_client`: its token was revoked,
`Hub.watch_tokens`): its queue is replaced by one last message, then `ClientClosed`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.api.encode import dumps
from rackwatch.api.params import iso
from rackwatch.bus import Bus, subjects
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesKey, SeriesRegistry
from rackwatch.model.entity import matches
from rackwatch.store.results import match_series

log = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]
Backlog = Callable[[], int]
"""Bytes written to the connection that the peer has not acknowledged yet."""
RecentAlerts = Callable[[int], list[dict[str, Any]]]
"""`AlertEngine.recent_alerts`: occurrences with `ts_ms > since_ms`, in the order recorded."""
AlertMark = tuple[Any, ...]
Ids = npt.NDArray[np.int32]


class ClientTooSlow(Exception):
    """A client did not take a message within the send timeout."""


class ClientClosed(Exception):
    """The server closes this client (`Hub.close_client`): a WebSocket close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server ({code}, {reason})")
        self.code = code
        self.reason = reason


BACKLOG_SLACK_BYTES = 1024
"""Unacknowledged bytes tolerated beyond what the sender counted: the frames the server itself
writes on the connection (pings, pongs) are not counted."""


@dataclass(frozen=True, slots=True)
class Filter:
    """What a subscription wants: an entity glob, metric names/globs (None: all) and a
    maximum message rate (None: every batch)."""

    entity: str = "**"
    metrics: tuple[str, ...] | None = None
    max_rate_hz: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "metrics": None if self.metrics is None else list(self.metrics),
            "max_rate_hz": self.max_rate_hz,
        }


class Client:
    """One connection: its outgoing queue (bounded, drop oldest), its subscription, the token
    it was opened with (None: an open loopback read) and, where the connection can tell, the
    messages written to it that the peer has not acknowledged yet."""

    def __init__(
        self,
        send: SendText,
        queue_size: int,
        *,
        backlog: Backlog | None = None,
        token_id: str | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.send = send
        self.backlog = backlog
        self.token_id = token_id
        self.group: Group | None = None
        self.n_dropped = 0
        self.closing: tuple[int, str] | None = None
        """(close code, reason) once the server closes this client; nothing more is queued."""
        self._queue: deque[str] = deque()
        self._size = queue_size
        self._wake = asyncio.Event()
        self._written_bytes = 0
        self._unacked: deque[tuple[int, float]] = deque()
        """(end offset in the bytes written, time written) of each unacknowledged message."""

    def put(self, text: str) -> bool:
        """Queue a text; True when the oldest queued one had to be dropped to make room."""
        if self.closing is not None:
            return False
        dropped = len(self._queue) >= self._size
        if dropped:
            self._queue.popleft()
            self.n_dropped += 1
        self._queue.append(text)
        self._wake.set()
        return dropped

    def close(self, code: int, reason: str, last: str) -> None:
        """Send `last` (instead of whatever is queued), then close with `code`."""
        self._queue.clear()
        self._queue.append(last)
        self.closing = (code, reason)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def next(self, timeout_s: float | None = None) -> str | None:
        """The next queued text; None when there is none within `timeout_s` (None: wait)."""
        if not self._queue:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                return None
        return self._queue.popleft() if self._queue else None

    def written(self, text: str, now: float) -> None:
        """Note a text handed to the connection (with its frame header) at `now`."""
        if self.backlog is None:
            return
        self._written_bytes += frame_bytes(text)
        self._unacked.append((self._written_bytes, now))

    def oldest_unacked(self) -> float | None:
        """When the oldest message the peer has not acknowledged was written (None: none).

        One `backlog()` call (a syscall) per message written, plus one per check while
        something is unacknowledged."""
        if not self._unacked or self.backlog is None:
            return None
        acked = self._written_bytes - self.backlog() + BACKLOG_SLACK_BYTES
        while self._unacked and self._unacked[0][0] <= acked:
            self._unacked.popleft()
        return self._unacked[0][1] if self._unacked else None


def frame_bytes(text: str) -> int:
    """Bytes of a server-to-client text frame (unmasked) carrying `text`.

    >>> frame_bytes("x" * 125), frame_bytes("x" * 126), frame_bytes("é" * 40_000)
    (127, 130, 80010)
    """
    n = len(text) if text.isascii() else len(text.encode())
    return n + (2 if n < 126 else 4 if n < 65_536 else 10)


class Group:
    """The clients that share one Filter, with the filter's series mask and rate state."""

    def __init__(self, flt: Filter) -> None:
        self.filter = flt
        self.clients: set[Client] = set()
        self.mask = np.zeros(0, dtype=bool)
        self.pending = np.zeros(0, dtype=bool)
        self.min_interval_s = 0.0 if flt.max_rate_hz is None else 1.0 / flt.max_rate_hz
        self.last_sent_s = -math.inf
        self.timer: asyncio.TimerHandle | None = None
        self.alerts_mark: AlertMark | None = None
        """The last alert occurrence considered for a message (None: none yet)."""

    def wants_alert(self, alert: dict[str, Any]) -> bool:
        entity = self.filter.entity
        return entity == "**" or matches(str(alert["entity"]), entity)

    def extend(self, keys: list[SeriesKey]) -> None:
        """Match the series registered since the mask was last extended (only those)."""
        known = len(self.mask)
        if len(keys) <= known:
            return
        new = np.zeros(len(keys) - known, dtype=bool)
        new[match_series(keys[known:], self.filter.entity, self.filter.metrics)] = True
        self.mask = np.concatenate([self.mask, new])
        self.pending = np.concatenate([self.pending, np.zeros(len(new), dtype=bool)])

    def select(self, ids: Ids) -> Ids:
        """The ids (sorted, unique, all < len(mask)) this group wants."""
        return ids[self.mask[ids]]


class RateMeter:
    """Samples per second over a sliding window, and the total."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self._window_s = window_s
        self._clock = clock
        self._started = clock()
        self._events: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def add(self, n: int) -> None:
        now = self._clock()
        self.total += n
        self._events.append((now, n))
        self._in_window += n
        self._trim(now)

    def rate(self) -> float:
        now = self._clock()
        self._trim(now)
        span = min(self._window_s, now - self._started)
        return self._in_window / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self._window_s:
            self._in_window -= self._events.popleft()[1]


class Hub:
    """Connected clients, their filter groups, and the newest value of every series seen.

    `shared` is the pipeline's live state table: a new subscription's first message is taken
    from it too, so a page shows values at once even before the next batch.
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        client_limit: int = 1000,
        send_timeout_s: float = 1.0,
        queue_size: int = 32,
        shared: LiveState | None = None,
        recent_alerts: RecentAlerts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client_limit < 1 or send_timeout_s <= 0 or queue_size < 1:
            raise ValueError("client_limit, send_timeout_s and queue_size must be positive")
        self.registry = registry
        self.client_limit = client_limit
        self.send_timeout_s = send_timeout_s
        self.queue_size = queue_size
        self.clock = clock
        self.clients: dict[str, Client] = {}
        self.groups: dict[Filter, Group] = {}
        self.latest = LiveState(max(len(registry), 1024))
        self.shared = shared
        self.recent_alerts = recent_alerts
        self._history: list[dict[str, Any]] | None = None
        """The engine's recent occurrences, read once for the batch being fanned out."""
        self._alerts_after: dict[AlertMark | None, list[dict[str, Any]]] = {}
        self.meter = RateMeter(clock=clock)
        self.n_dropped = 0
        self.n_sent = 0
        self.n_too_slow = 0
        self.n_refused = 0
        self.n_revoked = 0
        """Clients closed because their token was revoked."""
        self._keys: list[SeriesKey] = []
        self._token_watch: asyncio.Task[None] | None = None

    @property
    def n_clients(self) -> int:
        return len(self.clients)

    # ------------------------------------------------------------------ clients

    def connect(
        self, send: SendText, *, backlog: Backlog | None = None, token_id: str | None = None
    ) -> Client | None:
        """A new client, or None when the client limit is reached. `backlog` (when the
        connection can tell) lets the sender see a client that stops reading; `token_id` is
        the token it was opened with, for `watch_tokens`."""
        if len(self.clients) >= self.client_limit:
            self.n_refused += 1
            return None
        client = Client(send, self.queue_size, backlog=backlog, token_id=token_id)
        self.clients[client.id] = client
        return client

    def disconnect(self, client: Client) -> None:
        self.unsubscribe(client)
        self.clients.pop(client.id, None)

    def put(self, client: Client, text: str) -> None:
        if client.put(text):
            self.n_dropped += 1

    def subscribe(self, client: Client, flt: Filter) -> None:
        """Move the client to the filter's group, then queue the newest values it covers."""
        self.unsubscribe(client)
        group = self.groups.get(flt)
        if group is None:
            group = self.groups[flt] = Group(flt)
            group.extend(self._refresh_keys())
            group.alerts_mark = self._newest_alert_mark()
        group.clients.add(client)
        client.group = group
        ts, value = self._snapshot(len(group.mask))
        ids = np.flatnonzero(group.mask & (ts >= 0)).astype(np.int32)
        if len(ids):
            self.put(client, self._encode(ids, ts, value))

    def unsubscribe(self, client: Client) -> None:
        group, client.group = client.group, None
        if group is None:
            return
        group.clients.discard(client)
        if not group.clients:
            if group.timer is not None:
                group.timer.cancel()
            del self.groups[group.filter]

    async def pump(self, client: Client) -> None:
        """Send the client's queue in order, forever. ClientTooSlow when a send does not
        complete, or a message written is not acknowledged by the peer, within the send
        timeout; ClientClosed once the last message of `close_client` is sent. Errors of the
        connection itself (the peer went away) propagate."""
        while True:
            if client.closing is not None and not client.pending:
                raise ClientClosed(*client.closing)
            wait_s = self._until_overdue(client)
            text = await client.next(wait_s)
            if text is None:
                continue
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await client.send(text)
            except TimeoutError:
                raise self._too_slow(client) from None
            self.n_sent += 1
            client.written(text, self.clock())

    def _until_overdue(self, client: Client) -> float | None:
        """Seconds until the client's oldest unacknowledged message is overdue (None: none
        is waiting); ClientTooSlow if it already is."""
        written_at = client.oldest_unacked()
        if written_at is None:
            return None
        left_s = written_at + self.send_timeout_s - self.clock()
        if left_s <= 0:
            raise self._too_slow(client)
        return left_s

    def _too_slow(self, client: Client) -> ClientTooSlow:
        self.n_too_slow += 1
        return ClientTooSlow(f"client {client.id} took no message within {self.send_timeout_s:g} s")

    def close_client(self, client: Client, code: int, reason: str, last: str) -> None:
        """Close a client from the server's side: `last` is its last message, then the socket
        is closed with `code` (its sender raises ClientClosed)."""
        self.unsubscribe(client)
        client.close(code, reason, last)

    def watch_tokens(
        self,
        known_ids: Callable[[], set[str]],
        last_message: Callable[[Client], str],
        *,
        interval_s: float,
        code: int,
    ) -> None:
        """Check every `interval_s` that the tokens of the open clients still exist, and close
        each client whose token is gone (revoked, maybe by another process: `rackwatch token
        revoke`) with `last_message(client)` and close code `code`. Starts one task, which
        ends once no client has a token (a new one starts it again).

        `known_ids` reads the token file, so it runs in a worker thread: one read per
        interval, whatever the number of clients."""
        if self._token_watch is None or self._token_watch.done():
            self._token_watch = asyncio.get_running_loop().create_task(
                self._watch_tokens(known_ids, last_message, interval_s, code),
                name="ws-token-watch",
            )

    async def _watch_tokens(
        self,
        known_ids: Callable[[], set[str]],
        last_message: Callable[[Client], str],
        interval_s: float,
        code: int,
    ) -> None:
        while any(c.token_id is not None for c in self.clients.values()):
            await asyncio.sleep(interval_s)
            try:
                ids = await asyncio.to_thread(known_ids)
            except Exception:  # an unreadable token file: keep the sockets, say so
                log.warning("cannot re-check the tokens of open WebSockets", exc_info=True)
                continue
            for client in list(self.clients.values()):
                token_id = client.token_id
                if token_id is not None and token_id not in ids and client.closing is None:
                    self.n_revoked += 1
                    self.close_client(client, code, "token revoked", last_message(client))

    # ------------------------------------------------------------------ telemetry

    async def run(self, bus: Bus, *, max_pending: int = 256) -> None:
        """The broadcaster: publish every telemetry Batch until the bus closes."""
        async with bus.subscribe(f"{subjects.TELEMETRY}.>", max_pending=max_pending) as sub:
            async for _subject, batch in sub:
                try:
                    self.publish(batch)
                except Exception:  # one bad batch must not end the stream for everyone
                    log.exception("WebSocket fan-out of a batch of %d samples failed", len(batch))

    def publish(self, batch: Batch) -> None:
        """Fan one Batch out: one text per group that wants any of its series."""
        if len(batch) == 0:
            return
        self.meter.add(len(batch))
        self.latest.update(batch)
        if not self.groups:
            return
        self._forget_alerts()
        keys = self._refresh_keys()
        ids = np.unique(batch.series)
        ids = ids[ids < len(keys)]  # unregistered ids cannot be named: skip them
        for group in list(self.groups.values()):
            wanted = group.select(ids)
            if not len(wanted):
                continue
            if group.min_interval_s == 0:
                self._send(group, wanted)
            else:
                group.pending[wanted] = True
                self._schedule(group)

    def _schedule(self, group: Group) -> None:
        if group.timer is not None:
            return
        delay = group.last_sent_s + group.min_interval_s - self.clock()
        if delay <= 0:
            self._flush(group)
        else:
            group.timer = asyncio.get_running_loop().call_later(delay, self._flush, group)

    def _flush(self, group: Group) -> None:
        group.timer = None
        self._forget_alerts()
        ids = np.flatnonzero(group.pending).astype(np.int32)
        group.pending[:] = False
        if len(ids) and group.clients:
            self._send(group, ids)

    def _send(self, group: Group, ids: Ids) -> None:
        group.last_sent_s = self.clock()
        text = self._encode(ids, self.latest.ts, self.latest.value, self._alerts_for(group))
        for client in group.clients:
            self.put(client, text)

    def _snapshot(self, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Newest (ts, value) of series 0..n-1 from what this hub has seen and, if given, the
        shared live state (filled before the first client came), whichever is newer."""
        ts = np.full(n, -1, dtype=np.int64)
        value = np.full(n, np.nan)
        for table in (self.shared, self.latest):
            if table is None:
                continue
            k = min(n, len(table.ts))
            newer = table.ts[:k] >= ts[:k]
            ts[:k][newer] = table.ts[:k][newer]
            value[:k][newer] = table.value[:k][newer]
        return ts, value

    def _forget_alerts(self) -> None:
        self._history = None
        self._alerts_after.clear()

    def _alerts_for(self, group: Group) -> list[dict[str, Any]]:
        """Occurrences recorded since the group's previous message, under its entity glob."""
        if self.recent_alerts is None:
            return []
        mark = group.alerts_mark
        found = self._alerts_after.get(mark)
        if found is None:
            if self._history is None:
                self._history = self.recent_alerts(-1)
            found = self._alerts_after[mark] = _after(self._history, mark)
        if not found:
            return []
        group.alerts_mark = _mark(found[-1])
        return [a for a in found if group.wants_alert(a)]

    def _newest_alert_mark(self) -> AlertMark | None:
        """The newest occurrence so far: a new subscription gets only later ones."""
        if self.recent_alerts is None:
            return None
        history = self.recent_alerts(-1)
        return _mark(history[-1]) if history else None

    def _refresh_keys(self) -> list[SeriesKey]:
        """The registry's keys, re-read (and every group mask extended) only when it grew."""
        if len(self.registry) != len(self._keys):
            self._keys = self.registry.keys()
            for group in self.groups.values():
                group.extend(self._keys)
        return self._keys

    def _encode(
        self,
        ids: Ids,
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        alerts: list[dict[str, Any]] | None = None,
    ) -> str:
        """`monitoring_data` with the value of each series in `ids` (NaN as null)."""
        keys = self._keys
        values = value[ids].tolist()
        ts_ms = int(ts[ids].max())
        data: dict[str, dict[str, float | None]] = {}
        for i, v in zip(ids.tolist(), values, strict=True):
            entity, metric = keys[i]
            metrics = data.get(entity)
            if metrics is None:
                metrics = data[entity] = {}
            metrics[metric] = v
        message = {
            "type": "monitoring_data",
            "timestamp": iso(ts_ms),
            "ts_ms": ts_ms,
            "data": data,
            "alerts": alerts or [],
        }
        return dumps(message).decode()  # NaN and infinities as null


def _mark(alert: dict[str, Any]) -> AlertMark:
    """What tells one occurrence from another: alert id, time, status and level."""
    return (alert.get("id"), alert.get("ts_ms"), alert.get("status"), alert.get("level"))


def _after(history: list[dict[str, Any]], mark: AlertMark | None) -> list[dict[str, Any]]:
    """The occurrences after the one marked; all of them when it is no longer in the
    (bounded) history, i.e. more came since than the history holds."""
    if mark is None:
        return history
    for i in range(len(history) - 1, -1, -1):
        if _mark(history[i]) == mark:
            return history[i + 1 :]
    return history
