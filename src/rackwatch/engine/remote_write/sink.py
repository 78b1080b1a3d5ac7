"""The remote write sink: a bus consumer of `telemetry.>` that posts the samples to a TSDB's
Prometheus remote write endpoint (docs/REMOTE_WRITE.md).

Batches wait in a queue bounded by `queue_samples`; a request goes out when `batch_samples`
are queued or the oldest has waited `flush_seconds`. One request at a time, in arrival order,
so a series' samples reach the TSDB in time order (Prometheus and Mimir refuse samples older
than the newest they hold). A request that fails with a connection error, a timeout, a 5xx or
a 429 is tried again after a backoff that doubles up to `backoff_max_seconds` (a `Retry-After`
is honoured within that bound), for as long as it takes: while it waits, new samples queue,
and past `queue_samples` the oldest are dropped and counted, so a TSDB that is down costs
bounded memory (the queue plus the one request in flight). Any other answer (4xx: a bad URL,
a refused tenant, a request too large) is never retried: its samples are counted as failed
and the refusal logged (the first, then at most once a minute).

When the bus closes the sink sends what is queued for up to `drain_seconds` (a request in
flight then may take `timeout_seconds` more), then counts the rest as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping

import cramjam
import httpx

from rackwatch.bus import Bus, subjects
from rackwatch.engine.remote_write.encode import NullPolicy, WriteRequest, WriteRequestEncoder
from rackwatch.model import Batch, SeriesRegistry

log = logging.getLogger(__name__)

PROTOCOL_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_EXCERPT = 200
_LOG_EVERY_S = 60.0
_MAX_BATCH_SAMPLES = 1_000_000
_MAX_QUEUE_SAMPLES = 100_000_000


class RemoteWriteSink:
    """Sends the bus's telemetry to `url` (e.g. `http://vm:8428/api/v1/write`).

    Counters (samples): `n_sent` (accepted by the TSDB), `n_failed` (refused with a 4xx, or
    not encodable), `n_dropped` (pushed out of a full queue, or left at stop); `n_requests`
    (answered 2xx) and `n_retries` (attempts that failed and were tried again).
    `transport` and `clock` are there for tests and benchmarks.
    """

    def __init__(
        self,
        bus: Bus,
        registry: SeriesRegistry,
        url: str,
        *,
        external_labels: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        nulls: NullPolicy = "stale",
        batch_samples: int = 10_000,
        flush_seconds: float = 5.0,
        queue_samples: int = 2_000_000,
        timeout_seconds: float = 10.0,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        drain_seconds: float = 10.0,
        max_pending: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"remote write url must be http:// or https:// with a host: {url!r}")
        if not 1 <= batch_samples <= _MAX_BATCH_SAMPLES:
            raise ValueError(f"batch_samples must be 1..{_MAX_BATCH_SAMPLES}, got {batch_samples}")
        if not batch_samples <= queue_samples <= _MAX_QUEUE_SAMPLES:
            raise ValueError(
                f"queue_samples must be batch_samples ({batch_samples})..{_MAX_QUEUE_SAMPLES}, "
                f"got {queue_samples}"
            )
        for name, seconds, top in (
            ("flush_seconds", flush_seconds, 3600.0),
            ("timeout_seconds", timeout_seconds, 600.0),
            ("backoff_seconds", backoff_seconds, 600.0),
            ("backoff_max_seconds", backoff_max_seconds, 3600.0),
            ("drain_seconds", drain_seconds, 3600.0),
        ):
            if not (math.isfinite(seconds) and 0 < seconds <= top):
                raise ValueError(f"{name} must be in (0, {top}] seconds, got {seconds}")
        clashing = {h.lower() for h in headers or {}} & {h.lower() for h in PROTOCOL_HEADERS}
        if clashing:
            raise ValueError(f"headers set by the protocol cannot be overridden: {clashing}")
        self._bus = bus
        self._encoder = WriteRequestEncoder(registry, external_labels=external_labels, nulls=nulls)
        self.url = url
        port = "" if parsed.port is None else f":{parsed.port}"
        self.where = f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
        """The URL without credentials or query, for logs."""
        self._headers = {**PROTOCOL_HEADERS, **(headers or {})}
        self.batch_samples = batch_samples
        self.flush_seconds = flush_seconds
        self.queue_samples = queue_samples
        self.timeout_seconds = timeout_seconds
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = max(backoff_max_seconds, backoff_seconds)
        self.drain_seconds = drain_seconds
        self._max_pending = max_pending
        self._transport = transport
        self._clock = clock
        self._queue: deque[tuple[float, Batch]] = deque()
        self._n_queued = 0
        self._n_in_flight = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._drain_deadline = math.inf
        self._failing = False
        self._last_logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self.n_sent = 0
        self.n_failed = 0
        self.n_dropped = 0
        self.n_requests = 0
        self.n_retries = 0
        self.last_error: str | None = None
        self.ready = asyncio.Event()

    @property
    def pending(self) -> int:
        """Samples queued or in the request being sent."""
        return self._n_queued + self._n_in_flight

    async def run(self) -> None:
        """Consume until the bus closes; then send what is queued, for up to `drain_seconds`."""
        async with (
            self._bus.subscribe(
                f"{subjects.TELEMETRY}.>", max_pending=self._max_pending
            ) as subscription,
            httpx.AsyncClient(timeout=self.timeout_seconds, transport=self._transport) as client,
        ):
            sender = asyncio.create_task(self._send_loop(client), name="remote-write-send")
            self.ready.set()
            try:
                async for _subject, message in subscription:
                    if sender.done():  # it failed: say so rather than queue for nobody
                        sender.result()
                    if isinstance(message, Batch) and len(message):
                        self.offer(message)
                self._closing = True
                self._drain_deadline = self._clock() + self.drain_seconds
                self._wake.set()
                await sender
            finally:
                left = self.pending
                if not sender.done():  # cancelled: what is left is lost
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
                self._drop(left, "left when the sink stopped")
                self._queue.clear()
                self._n_queued = 0

    def offer(self, batch: Batch) -> None:
        """Queue a batch; past `queue_samples`, the oldest samples are dropped and counted."""
        self._queue.append((self._clock(), batch))
        self._n_queued += len(batch)
        excess = self._n_queued - self.queue_samples
        if excess > 0:
            self._drop(excess, "the queue is full (the TSDB is slow or down): oldest dropped")
            while excess:
                arrived, oldest = self._queue[0]
                if len(oldest) <= excess:
                    self._queue.popleft()
                    excess -= len(oldest)
                    self._n_queued -= len(oldest)
                else:
                    self._queue[0] = (arrived, _rows(oldest, excess, len(oldest)))
                    self._n_queued -= excess
                    excess = 0
        self._wake.set()

    async def _send_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if not self._closing and self._n_queued < self.batch_samples:
                wait_s = self._queue[0][0] + self.flush_seconds - self._clock()
                if wait_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait_s)
                    self._wake.clear()
                    continue
            batch = self._take(self.batch_samples)
            self._n_in_flight = len(batch)
            try:
                await self._deliver(client, batch)
            finally:
                self._n_in_flight = 0

    def _take(self, n: int) -> Batch:
        """Up to `n` of the oldest queued samples, as one Batch."""
        parts: list[Batch] = []
        room = n
        while self._queue and room:
            arrived, batch = self._queue[0]
            if len(batch) <= room:
                self._queue.popleft()
                parts.append(batch)
                room -= len(batch)
            else:
                parts.append(_rows(batch, 0, room))
                self._queue[0] = (arrived, _rows(batch, room, len(batch)))
                room = 0
        taken = Batch.concat(parts)
        self._n_queued -= len(taken)
        return taken

    async def _deliver(self, client: httpx.AsyncClient, batch: Batch) -> None:
        try:
            request, body = await asyncio.to_thread(self._encode, batch)
        except ValueError as exc:  # a batch of series this registry does not know
            self.n_failed += len(batch)
            self.last_error = str(exc)
            log.error("remote write: %d samples not sent, cannot encode them: %s", len(batch), exc)
            return
        if request.n_samples == 0:
            return
        delay_s = self.backoff_seconds
        while True:
            if self._closing and self._clock() >= self._drain_deadline:
                self._drop(request.n_samples, "not sent within drain_seconds of the stop")
                return
            retry_after_s: float | None = None
            try:
                response = await client.post(self.url, content=body, headers=self._headers)
            except httpx.HTTPError as exc:  # connection refused, reset, timeout...
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self._succeeded(request)
                    return
                reason = f"HTTP {response.status_code}: {_cut(response.text)}"
                if not _retryable(response.status_code):
                    self._refused(request, reason)
                    return
                retry_after_s = _retry_after_s(response)
            self.last_error = reason
            if not self._failing:
                self._failing = True
                log.warning("remote write to %s failed, retrying: %s", self.where, reason)
            self.n_retries += 1
            wait_s = min(
                delay_s if retry_after_s is None else retry_after_s, self.backoff_max_seconds
            )
            if self._closing:
                wait_s = max(0.0, min(wait_s, self._drain_deadline - self._clock()))
            await asyncio.sleep(wait_s)
            delay_s = min(delay_s * 2.0, self.backoff_max_seconds)

    def _encode(self, batch: Batch) -> tuple[WriteRequest, bytes]:
        request = self._encoder.encode(batch)
        return request, bytes(cramjam.snappy.compress_raw(request.data))

    def _succeeded(self, request: WriteRequest) -> None:
        self.n_sent += request.n_samples
        self.n_requests += 1
        if self._failing:
            self._failing = False
            log.info("remote write to %s recovered", self.where)

    def _refused(self, request: WriteRequest, reason: str) -> None:
        self.n_failed += request.n_samples
        self.last_error = reason
        self._log_throttled(
            "refused",
            logging.ERROR,
            f"remote write to {self.where} refused {request.n_samples} samples (not retried): "
            f"{reason}",
        )

    def _drop(self, n: int, why: str) -> None:
        if n > 0:
            self.n_dropped += n
            self._log_throttled(
                "dropped", logging.WARNING, f"remote write: dropped {n} samples: {why}"
            )

    def _log_throttled(self, what: str, level: int, message: str) -> None:
        """Log the first of its kind, then at most once a minute with the count left out."""
        now = self._clock()
        if now - self._last_logged.get(what, -math.inf) < _LOG_EVERY_S:
            self._unlogged[what] = self._unlogged.get(what, 0) + 1
            return
        unlogged = self._unlogged.pop(what, 0)
        since = f" ({unlogged} more {what} since the last report)" if unlogged else ""
        log.log(level, "%s%s", message, since)
        self._last_logged[what] = now


def _retryable(status: int) -> bool:
    """Worth trying again: the TSDB is overloaded or broken (5xx), or asks us to slow (429)."""
    return status >= 500 or status == 429


def _retry_after_s(response: httpx.Response) -> float | None:
    """A `Retry-After` in seconds (the date form is ignored: the backoff applies)."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    return Batch(batch.ts[start:stop], batch.series[start:stop], batch.value[start:stop])


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"
