"""The hub: connected clients, their groups, and the fan-out of each telemetry batch.

The hub listens to the live state table (`LiveState.listen`): once a batch is folded in, it
encodes one text per group that wants any of the batch's series, reading the values from that
table, and puts it in each of the group's clients' queues. Nothing here awaits a client on
that path, so a slow or stuck client never delays the others or the ingest. A sender task per
client (`Hub.pump`) writes its queue with a timeout, and drops a client that does not take its
messages in time (`ClientTooSlow`).

A client can also be closed by the server (`Hub.close_client`: its token was revoked,
`Hub.watch_tokens`): its queue is replaced by one last message, then `ClientClosed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from rackwatch.api.fanout.alert_feed import AlertFeed, RecentAlerts
from rackwatch.api.fanout.client import Backlog, Client, ClientClosed, ClientTooSlow, SendText
from rackwatch.api.fanout.groups import Filter, Group, Ids
from rackwatch.api.fanout.message import monitoring_data
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesKey, SeriesRegistry

log = logging.getLogger(__name__)


class Hub:
    """Connected clients and their filter groups, fed by the live state table `live` (the
    pipeline's; a table of its own when None, which then takes batches from `publish`)."""

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        client_limit: int = 1000,
        send_timeout_s: float = 1.0,
        queue_size: int = 32,
        live: LiveState | None = None,
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
        self.live = LiveState(max(len(registry), 1024), clock=clock) if live is None else live
        self.live.listen(self.fan_out)
        self.alerts = AlertFeed(recent_alerts)
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

    def close(self) -> None:
        """Stop following the live state table (the app's lifespan ends)."""
        self.live.unlisten(self.fan_out)

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
            group.alerts_mark = self.alerts.newest_mark()
        group.clients.add(client)
        client.group = group
        ts = self.live.ts[: len(group.mask)]
        ids = np.flatnonzero(group.mask[: len(ts)] & (ts >= 0)).astype(np.int32)
        if len(ids):
            self.put(client, monitoring_data(self._keys, ids, self.live.ts, self.live.value))

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

    def publish(self, batch: Batch) -> None:
        """Fold a batch into the live state table, which fans it out (tests, and a hub with
        a table of its own)."""
        self.live.update(batch)

    def fan_out(self, batch: Batch) -> None:
        """One text per group that wants any of the batch's series (the live state already
        holds the batch)."""
        if not self.groups:
            return
        self.alerts.next_batch()
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
        self.alerts.next_batch()
        ids = np.flatnonzero(group.pending).astype(np.int32)
        group.pending[:] = False
        if len(ids) and group.clients:
            self._send(group, ids)

    def _send(self, group: Group, ids: Ids) -> None:
        group.last_sent_s = self.clock()
        alerts = self.alerts.for_group(group)
        text = monitoring_data(self._keys, ids, self.live.ts, self.live.value, alerts)
        for client in group.clients:
            self.put(client, text)

    def _refresh_keys(self) -> list[SeriesKey]:
        """The registry's keys, re-read (and every group mask extended) only when it grew."""
        if len(self.registry) != len(self._keys):
            self._keys = self.registry.keys()
            for group in self.groups.values():
                group.extend(self._keys)
        return self._keys
