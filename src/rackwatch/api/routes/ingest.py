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
"""

from __future__ import annotations

from dataclasses import dataclass

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
from rackwatch.bus import subjects
from rackwatch.model import Batch
from rackwatch.model.entity import validate
from rackwatch.store.base import EntityRecord

router = APIRouter(tags=["ingest"], route_class=AccessFirstRoute)

MAX_INGEST_BYTES = 4 * 1024 * 1024
SOURCE = "agent"
ROOT = "host/"
FUTURE_SLACK_MS = 300_000
"""A collection may be stamped this far past the server's clock (hosts' clocks drift)."""


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
        await ctx.bus.publish(subjects.telemetry(SOURCE), decoded.batch)
    if decoded.inventory:
        await run_in_threadpool(ctx.store.upsert_inventory, decoded.inventory)
    return IngestOut(
        accepted=len(decoded.batch),
        batches=decoded.n_batches,
        series_created=decoded.series_created,
        inventory=len(decoded.inventory),
    )


def _decode(raw: bytes, ctx: ApiContext) -> _Decoded:
    """The body as one Batch and inventory records; 400/422 naming what is wrong."""
    try:
        body = IngestIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    latest_ms = ctx.clock_ms() + FUTURE_SLACK_MS
    keys: list[tuple[str, str]] = []
    ts: list[int] = []
    values: list[float] = []
    for batch in body.batches:
        if batch.ts_ms > latest_ms:
            raise unprocessable(
                f"a collection at {batch.ts_ms} is more than {FUTURE_SLACK_MS // 1000} s ahead "
                "of this server's clock: check the agent host's clock (NTP)"
            )
        for entity, metrics in batch.entities.items():
            _check_entity(entity)
            for metric, value in metrics.items():
                keys.append((entity, metric))
                ts.append(batch.ts_ms)
                values.append(np.nan if value is None else float(value))
    inventory = []
    for item in body.inventory:
        _check_entity(item.entity)
        inventory.append(EntityRecord(item.entity, item.kind, item.attributes))
    registry = ctx.registry
    new = {key for key in keys if registry.get(*key) is None}
    if new and len(registry) + len(new) > ctx.ingest_series_limit:
        raise unprocessable(
            f"this push would create {len(new)} series and the server holds {len(registry)}, "
            f"above its limit of {ctx.ingest_series_limit}: raise [server] "
            "ingest_series_limit, or have the agents send fewer series"
        )
    ids = registry.intern_many(keys)
    return _Decoded(
        batch=Batch.of(np.array(ts, dtype=np.int64), ids, np.array(values, dtype=np.float64)),
        n_batches=len(body.batches),
        series_created=len(new),
        inventory=inventory,
    )


def _check_entity(entity: str) -> None:
    if not entity.startswith(ROOT):
        raise unprocessable(
            f"entity {excerpt(entity)} is not under {ROOT}: an agent writes the series of "
            "real machines only (host/<name>/...)"
        )
    try:
        validate(entity)
    except ValueError as exc:
        raise unprocessable(str(exc)) from None
