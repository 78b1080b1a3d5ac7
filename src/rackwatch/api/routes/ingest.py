"""POST /ingest: telemetry pushed by `rackwatch agent` (real machines), into the pipeline.

An agent sends its collections (each one instant's readings, `entity -> metric -> value`) and
now and then its inventory. The readings become one Batch published on the bus like any
source's (`telemetry.agent`), so the store, the live state, the alerts and the WebSocket take
them as they take the twin's. A push that is sent again (the agent did not get the answer)
changes nothing: the store keeps the first value of each series and instant.

An `ingest` token writes under `host/` and nowhere else: an agent cannot overwrite the twin's
or another source's series, and cannot read. The body (up to 4 MiB) is parsed and checked in
a worker thread, never on the event loop that drives the fans; every number is finite and
bounded, and the number of series the agents may create is capped (`ingest_series_limit`).

Pushes decoded within `COALESCE_S` of each other go on the bus as one Batch, in the order they
were decoded: every consumer of the bus (alerts, the store writer, the live state) pays a cost
per batch, so a thousand agents pushing at the same instant make a few dozen batches, not a
thousand. A push is answered once the batch holding it is published.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from rackwatch.api.auth import AccessFirstRoute, IngestAccess
from rackwatch.api.deps import ApiContext, CtxDep
from rackwatch.api.lookup import unprocessable
from rackwatch.api.params import excerpt
from rackwatch.api.schemas import ErrorOut, IngestIn, IngestOut
from rackwatch.bus import Bus, subjects
from rackwatch.model import Batch
from rackwatch.model.entity import validate
from rackwatch.store.base import EntityRecord

router = APIRouter(tags=["ingest"], route_class=AccessFirstRoute)

MAX_INGEST_BYTES = 4 * 1024 * 1024
SOURCE = "agent"
ROOT = "host/"
FUTURE_SLACK_MS = 300_000
"""A collection may be stamped this far past the server's clock (hosts' clocks drift)."""
COALESCE_S = 0.05
"""Pushes decoded within this long of the first one waiting are published as one Batch."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    batch: Batch
    n_batches: int
    series_created: int
    inventory: list[EntityRecord]


@router.post(
    "/ingest",
    status_code=202,
    max_body_size=MAX_INGEST_BYTES,
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": IngestIn.model_json_schema()}},
        }
    },
)
async def ingest(_caller: IngestAccess, ctx: CtxDep, request: Request) -> IngestOut:
    """Readings of real machines, oldest collection first (see docs/API.md, "Ingest"). The
    body is read only once the token is checked."""
    raw = await request.body()
    decoded = await run_in_threadpool(_decode, raw, ctx)
    if len(decoded.batch):
        publisher = getattr(request.app.state, "ingest_publisher", None)
        if publisher is None or publisher.bus is not ctx.bus:
            publisher = request.app.state.ingest_publisher = _Coalescer(ctx.bus)
        await publisher.publish(decoded.batch)
    if decoded.inventory:
        await run_in_threadpool(ctx.store.upsert_inventory, decoded.inventory)
    return IngestOut(
        accepted=len(decoded.batch),
        batches=decoded.n_batches,
        series_created=decoded.series_created,
        inventory=len(decoded.inventory),
    )


class _Coalescer:
    """Publishes the batches handed to it within `COALESCE_S` of each other as one Batch on
    `telemetry.agent`; `publish` returns once that Batch is on the bus (or raises what the
    bus raised). One per app, used from its event loop."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._batches: list[Batch] = []
        self._published: asyncio.Future[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def publish(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        published = self._published
        if published is None or published.get_loop() is not loop:
            published = self._published = loop.create_future()
            self._batches = []
            loop.call_later(COALESCE_S, self._start_flush)
        self._batches.append(batch)
        # Shielded: a client that hangs up does not take the others' publish with it.
        await asyncio.shield(published)

    def _start_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        published, batches = self._published, self._batches
        self._published, self._batches = None, []
        assert published is not None
        try:
            await self.bus.publish(subjects.telemetry(SOURCE), Batch.concat(batches))
        except asyncio.CancelledError:
            published.cancel()
            raise
        except Exception as exc:
            published.set_exception(exc)
        else:
            published.set_result(None)


def _decode(raw: bytes, ctx: ApiContext) -> _Decoded:
    """The body as one Batch and inventory records; 400/422 naming what is wrong."""
    try:
        body = IngestIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    latest_ms = ctx.clock_ms() + FUTURE_SLACK_MS
    keys: list[tuple[str, str]] = []
    values: list[float | int | None] = []  # None becomes NaN in the array
    stamps: list[int] = []
    counts: list[int] = []
    checked: set[str] = set()
    for batch in body.batches:
        if batch.ts_ms > latest_ms:
            raise unprocessable(
                f"a collection at {batch.ts_ms} is more than {FUTURE_SLACK_MS // 1000} s ahead "
                "of this server's clock: check the agent host's clock (NTP)"
            )
        n = len(keys)
        for entity, metrics in batch.entities.items():
            if entity not in checked:
                _check_entity(entity)
                checked.add(entity)
            keys.extend(zip(repeat(entity), metrics, strict=False))
            values.extend(metrics.values())
        stamps.append(batch.ts_ms)
        counts.append(len(keys) - n)
    inventory = []
    for item in body.inventory:
        _check_entity(item.entity)
        inventory.append(EntityRecord(item.entity, item.kind, item.attributes))
    registry = ctx.registry
    ids = [registry.get(entity, metric) for entity, metric in keys]
    missing = [i for i, sid in enumerate(ids) if sid is None]
    new = {keys[i] for i in missing}
    if new and len(registry) + len(new) > ctx.ingest_series_limit:
        raise unprocessable(
            f"this push would create {len(new)} series and the server holds {len(registry)}, "
            f"above its limit of {ctx.ingest_series_limit}: raise [server] "
            "ingest_series_limit, or have the agents send fewer series"
        )
    for i in missing:
        ids[i] = registry.intern(*keys[i])
    return _Decoded(
        batch=Batch.of(
            np.repeat(np.array(stamps, dtype=np.int64), counts),
            np.array(ids, dtype=np.int32),
            np.array(values, dtype=np.float64),
        ),
        n_batches=len(body.batches),
        series_created=len(new),
        inventory=inventory,
    )


_PLAIN_PATH = re.compile(r"host(?:/[A-Za-z0-9_.:-]+)+")
"""A path under `host/` whose segments are plain names: `validate` would pass it."""


def _check_entity(entity: str) -> None:
    if _PLAIN_PATH.fullmatch(entity):  # the usual case, in one step
        return
    if not entity.startswith(ROOT):
        raise unprocessable(
            f"entity {excerpt(entity)} is not under {ROOT}: an agent writes the series of "
            "real machines only (host/<name>/...)"
        )
    try:
        validate(entity)
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
