"""A NATS JetStream bus: the Bus protocol over durable streams (needs the `nats` extra).

Messages go through `bus.codec`; one stream per subject family, bounded in age and size;
subscriptions are JetStream consumers that acknowledge each message once handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from rackwatch.bus import subjects
from rackwatch.bus.codec import CodecError, decode, encode_parts
from rackwatch.bus.queue import DropOldestQueue

FAMILIES = (subjects.TELEMETRY, subjects.EVENTS, subjects.COMMANDS)
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_HEADER_ROOM = 256  # the message id header counts toward the server's max payload
_RECONNECT_ATTEMPTS = 60  # nats-py's default, 2 s apart
_NO_STORAGE = 10047  # JetStream: the server cannot reserve a stream's max_bytes
log = logging.getLogger(__name__)


async def _log_error(exc: Exception) -> None:
    # One line, not nats-py's traceback for every failed try.
    log.warning("NATS: %s", exc or type(exc).__name__)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much each stream keeps; the oldest messages go first. -1: no limit on that count."""

    max_age_s: float = 24 * 3600.0
    max_bytes: int = 1 << 30
    max_msgs: int = -1


class StreamStorageError(RuntimeError):
    """The server has no room left to reserve a stream's `max_bytes` (its JetStream storage is
    promised to other streams): the message says what to do."""


class NatsSubscription:
    """One JetStream consumer's messages, decoded, in a bounded queue (as MemorySubscription).

    A message is acknowledged when the reader comes back for the next one, so a reader that
    dies mid-message has it redelivered (to a durable consumer) after `ack_wait`. `rejected`
    counts payloads that could not be decoded: terminated on the server and skipped.
    """

    def __init__(
        self,
        prefix: str,
        max_pending: int,
        on_acked: Callable[[float, int], None] | None = None,
        ack_later: bool = False,
    ) -> None:
        self._strip = len(prefix) + 1 if prefix else 0
        self._ack_later = ack_later
        self._held: list[Msg] = []
        """With `ack_later`: messages read, waiting for `ack_held` (the reader's effect done)."""
        self._on_acked = on_acked
        """Told of each message done: when the stream stored it (epoch s), times delivered."""
        self._queue: DropOldestQueue[tuple[str, Any, Msg]] = DropOldestQueue(max_pending)
        self._in_hand: Msg | None = None  # handed to the reader, acked when it asks again
        self._dropped = 0
        self.rejected = 0
        self.consumer: JetStreamContext.PushSubscription | None = None
        """The server side (for `NatsBus.settle`), set once subscribed."""

    async def offer(self, msg: Msg) -> None:
        """The NATS callback: decode and queue, never raise (it would only be logged)."""
        try:
            message = decode(msg.data)
        except CodecError:
            self.rejected += 1
            with contextlib.suppress(NatsError):
                await msg.term()  # it will never decode: no redelivery
            return
        # Full only when redeliveries pile up past max_ack_pending: the oldest goes, as in
        # MemoryBus, acked so that it stays gone; a reader that acknowledges once its effect
        # is done (ack_later) must not lose it: it is given back, to come again.
        full = len(self._queue) >= self._queue.capacity
        oldest = self._queue.get_nowait() if full else None
        if oldest is not None:
            with contextlib.suppress(NatsError):
                if self._ack_later:
                    await oldest[2].nak()
                else:
                    self._dropped += 1
                    await oldest[2].ack()
        self._queue.put((msg.subject[self._strip :], message, msg))

    async def release(self) -> None:
        """Give back what the reader did not finish (nak: redelivered now, not after ack_wait)."""
        unread = [msg for _, _, msg in self._queue.clear()]
        if self._in_hand is not None:
            unread.insert(0, self._in_hand)
            self._in_hand = None
        unread[:0], self._held = self._held, []  # read, never written: they come again
        for msg in unread:
            with contextlib.suppress(NatsError):
                await msg.nak()
        self._queue.close()

    def close(self) -> None:
        self._queue.close()

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def in_hand(self) -> Msg | None:
        """The message the reader is handling (acked when it asks for the next)."""
        return self._in_hand

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            await self._ack_in_hand()  # the reader is back (through any iterator): done with it
            item = await self._queue.get()
            if item is None:
                return
            subject, message, self._in_hand = item
            yield subject, message

    async def _ack_in_hand(self) -> None:
        msg, self._in_hand = self._in_hand, None
        if msg is None:
            return
        if self._ack_later:
            self._held.append(msg)
            return
        await self._ack(msg)

    async def keep_alive(self, every_s: float) -> None:
        """Every `every_s`, tell the server that the messages delivered and not yet
        acknowledged are being worked on (JetStream's in-progress ack, which restarts their
        ack_wait): those queued, and with `ack_later` those read (held, in hand). A reader
        with a backlog longer than ack_wait would otherwise have it delivered a second time,
        and do it twice; a reader that dies stops telling, and they come again after
        ack_wait. A plain reader's message in hand is not kept: held past ack_wait, it comes
        again (the reader is stuck on it)."""
        while True:
            await asyncio.sleep(every_s)
            working = [*self._held, *(m for _, _, m in self._queue.peek_all())]
            if self._in_hand is not None and self._ack_later:
                working.append(self._in_hand)
            for msg in working:
                try:
                    await msg.in_progress()
                except NatsError:
                    break  # the connection is away: the server will redeliver if need be

    async def ack_held(self) -> None:
        """Acknowledge every message read so far (with `ack_later`: the reader has written
        them; a reader that gathers messages into one effect calls this after it)."""
        if self._in_hand is not None:
            self._held.append(self._in_hand)
            self._in_hand = None
        held, self._held = self._held, []
        for msg in held:
            await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        with contextlib.suppress(NatsError):  # closed meanwhile: redelivered later
            await msg.ack()
        if self._on_acked is not None:
            meta = msg.metadata
            self._on_acked(meta.timestamp.timestamp(), meta.num_delivered)


class NatsBus:
    """The Bus over NATS JetStream: `await connect(url)`, publish and subscribe, `await close()`.

    Streams: one per family, `<PREFIX>_TELEMETRY`, `_EVENTS`, `_COMMANDS` (prefix `RACKWATCH`
    by default), holding `telemetry.>`, `events.>` and `commands.>`; a non-empty `prefix` is
    also put before every subject on the wire (`<prefix>.events.x`), so that several rackwatch
    instances (or tests) share one server. Each stream is created if missing, its retention
    (`Retention`) applied at every connect; a publish waits for the stream's ack.

    `subscribe(pattern)` takes MemoryBus's patterns (`*` one token, `>` the rest) inside one
    family. Plain subscribers get an ephemeral consumer from now on; `durable="name"` names a
    consumer that resumes where it stopped (and `replay=True` starts a new consumer at the
    stream's oldest message). Acks are explicit; an unacked message comes again after
    `ack_wait_s`, or at once when a subscription ends with it unread. `max_pending` is also
    the consumer's `max_ack_pending`, so the server holds back rather than overflow a reader.
    Messages of one subject arrive in order (redeliveries aside).

    A Kafka adapter maps one to one: a topic per family (the subject as the record key, so one
    subject stays in one partition and in order), retention.ms/retention.bytes for
    `Retention`, a consumer group per durable name (a fresh group at the latest offset for a
    plain subscriber, `auto.offset.reset=earliest` for `replay`), offsets committed where
    this acks, and the pattern matched on the key by the adapter.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        retention: Retention | None = None,
        ack_wait_s: float = 30.0,
        publish_patience_s: float = 120.0,
        manage_streams: bool = True,
    ) -> None:
        if prefix and not _TOKEN.fullmatch(prefix):
            raise ValueError(f"a bus prefix is one token of letters, digits, _ or -: {prefix!r}")
        self.prefix = prefix
        self.retention = retention or Retention()
        self.manage_streams = manage_streams
        """Off: streams missing are made, existing ones left as the site configured them
        (an agent on a host without the site's config must not reset its retention)."""
        self.ack_wait_s = ack_wait_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._max_payload = 0
        self._subscriptions: list[NatsSubscription] = []
        self._opening = 0
        self.publish_patience_s = publish_patience_s
        self.n_publish_retries = 0
        """Publishes tried again (the server was away or slow to answer)."""
        self._publisher_id = secrets.token_hex(8)  # message ids unique to this connection
        self._sent = 0

    @property
    def stream_names(self) -> dict[str, str]:
        """The stream of each family."""
        head = (self.prefix or "rackwatch").upper()
        return {family: f"{head}_{family.upper()}" for family in FAMILIES}

    def wire_subject(self, subject: str) -> str:
        """`subject` as it is on the server (after the prefix)."""
        return f"{self.prefix}.{subject}" if self.prefix else subject

    async def connect(self, url: str = "nats://127.0.0.1:4222") -> None:
        """Connect and make the streams; a server that does not answer raises (after two
        tries, about 2 s) an OSError or a nats error, such as NoServersError."""
        # Two tries at start, not nats-py's 60 (two minutes of retries before an error)...
        nc = await nats.connect(
            url, name="rackwatch", max_reconnect_attempts=1, error_cb=_log_error
        )
        # ...then its usual patience once running: a server restart is ridden out.
        nc.options["max_reconnect_attempts"] = _RECONNECT_ATTEMPTS
        self._nc = nc
        self._js = self._nc.jetstream()
        self._max_payload = self._nc.max_payload  # the server's, from its INFO
        for family, name in self.stream_names.items():
            await self._ensure_stream(name, self.wire_subject(f"{family}.>"))

    async def _ensure_stream(self, name: str, wire_subjects: str) -> None:
        js = self._jetstream()
        kept = self.retention
        config = StreamConfig(
            name=name,
            subjects=[wire_subjects],
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,  # bounded: the oldest go, a publish is never refused
            max_age=kept.max_age_s,
            max_bytes=kept.max_bytes,
            max_msgs=kept.max_msgs,
        )
        try:
            try:
                await js.stream_info(name)
            except NotFoundError:
                await js.add_stream(config)
            else:
                if self.manage_streams:
                    await js.update_stream(config)  # the retention asked for now wins
        except APIError as exc:
            if exc.err_code != _NO_STORAGE:
                raise
            raise StreamStorageError(
                f"the NATS server cannot reserve {kept.max_bytes / 2**20:,.0f} MiB for stream "
                f"{name}: its JetStream storage is promised to other streams. Lower [bus] "
                "stream_max_bytes, give the server more (jetstream max_file_store) or delete "
                "streams no longer used (nats stream ls; nats stream rm NAME)"
            ) from exc

    async def wait_subscribed(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until every subscription asked for so far has its
        consumer on the server: a consumer starts at new messages, so a publish made before
        would never reach it (MemoryBus subscribes at once, NATS takes a round trip)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._opening and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def settle(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) until every message the server holds for a subscription
        has reached its queue, so that closing after a stop loses none of them to the readers."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._subscriptions and not await self._all_delivered():
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.05)

    async def _all_delivered(self) -> bool:
        for sub in list(self._subscriptions):
            if sub.consumer is None:
                continue
            try:
                info = await sub.consumer.consumer_info()
            except NatsError:
                return True  # the connection is gone: nothing more will come
            # Delivered and not acked on the server: in our queue or in the reader's hand.
            held = sub.pending + (sub.in_hand is not None)
            if info.num_pending or (info.num_ack_pending or 0) > held:
                return False
        return True

    @property
    def pending(self) -> int:
        """Messages queued and not yet read, over every subscription (as MemoryBus)."""
        return sum(sub.pending for sub in self._subscriptions)

    @property
    def dropped(self) -> int:
        return sum(sub.dropped for sub in self._subscriptions)

    def end_subscriptions(self) -> None:
        """End every subscription's iteration (what is queued is still read), connected: the
        readers can still acknowledge what they finish."""
        for sub in self._subscriptions:
            sub.close()

    async def close(self) -> None:
        """End every subscription's iteration (what is queued is still read) and disconnect."""
        self.end_subscriptions()
        if self._nc is not None:
            await self._nc.close()
        self._nc = self._js = None

    async def publish(self, subject: str, message: Any) -> None:
        """Publish and wait for the stream's ack; a Batch over the server's max payload goes
        as several Batches (in order), which readers of telemetry take as they come.

        While the server is away (a restart), the publish is tried again until it is stored
        or `publish_patience_s` has passed (then the error is raised). Each payload carries a
        message id, so one stored before its ack was lost is not stored twice (JetStream drops
        a repeated id within the stream's duplicate window, 2 minutes)."""
        self._family(subject, min_tokens=2)
        js, wire = self._jetstream(), self.wire_subject(subject)
        for payload in encode_parts(message, self._max_payload - _HEADER_ROOM):
            self._sent += 1
            await self._publish_until_stored(
                js, wire, payload, f"{self._publisher_id}-{self._sent}"
            )

    async def _publish_until_stored(
        self, js: JetStreamContext, wire: str, payload: bytes, msg_id: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_patience_s
        pause = 0.05
        while True:
            try:
                await js.publish(wire, payload, timeout=2.0, headers={"Nats-Msg-Id": msg_id})
                return
            except (TimeoutError, NatsError) as exc:  # away, reconnecting, or slow
                # The stream refused it: asking again changes nothing, unless it is starting.
                refused = isinstance(exc, APIError) and not isinstance(exc, ServiceUnavailableError)
                closed = self._nc is None or self._nc.is_closed
                if refused or closed or loop.time() + pause > deadline:
                    raise
                self.n_publish_retries += 1
                log.debug("publish on %s: %s; trying again", wire, exc or type(exc).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    @asynccontextmanager
    async def subscribe(
        self,
        pattern: str,
        *,
        max_pending: int = 10_000,
        durable: str | None = None,
        replay: bool = False,
        on_acked: Callable[[float, int], None] | None = None,
        ack_later: bool = False,
    ) -> AsyncIterator[NatsSubscription]:
        family = self._family(pattern, min_tokens=1)
        if durable is not None and not _TOKEN.fullmatch(durable):
            raise ValueError(f"a durable name is one token of letters, digits, _ or -: {durable!r}")
        sub = NatsSubscription(self.prefix, max_pending, on_acked, ack_later)
        self._opening += 1  # until the server has the consumer (see `wait_subscribed`)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_ack_pending=max_pending,
            deliver_policy=DeliverPolicy.ALL if replay else DeliverPolicy.NEW,
        )
        try:
            nats_sub = await self._jetstream().subscribe(
                self.wire_subject(pattern),
                stream=self.stream_names[family],
                durable=durable,
                config=config,
                manual_ack=True,
                cb=sub.offer,
            )
        finally:
            self._opening -= 1
        sub.consumer = nats_sub
        self._subscriptions.append(sub)
        keep_alive = asyncio.create_task(sub.keep_alive(max(self.ack_wait_s / 3, 0.2)))
        try:
            yield sub
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive
            self._subscriptions.remove(sub)
            with contextlib.suppress(NatsError):  # already closed with the bus
                await nats_sub.unsubscribe()
            await sub.release()

    def _family(self, subject: str, *, min_tokens: int) -> str:
        tokens = subject.split(".")
        if tokens[0] not in FAMILIES or len(tokens) < min_tokens or "" in tokens:
            raise ValueError(
                f"{subject!r}: a NATS bus subject starts with one of {', '.join(FAMILIES)}"
            )
        return tokens[0]

    @property
    def jetstream(self) -> JetStreamContext:
        """The connection's JetStream context (for tools and tests: stream and consumer info)."""
        return self._jetstream()

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("NatsBus is not connected: await connect(url) first")
        return self._js
