"""GET /series: stored rows of the matching series, from the tier that answers the step.

Before a query runs, its size is estimated from the data the store holds, not from the range
asked for: `from=-7d` over a store minutes old is a few rows per series, not a week of them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext, CtxDep
from rackwatch.api.encode import series_json_parts
from rackwatch.api.params import (
    ParamError,
    check_entity_glob,
    check_metric_globs,
    parse_step,
    parse_time,
)
from rackwatch.api.schemas import ErrorOut, SeriesQueryOut
from rackwatch.store import base

router = APIRouter(tags=["series"], dependencies=[READ_ACCESS])

TIME_HELP = "Epoch ms, ISO 8601, `now`, or a duration before now such as `-6h`."


@router.get("/series", response_model=SeriesQueryOut, responses={400: {"model": ErrorOut}})
async def get_series(
    ctx: CtxDep,
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    metric: Annotated[
        list[str] | None, Query(description="Metric names or globs (repeatable).")
    ] = None,
    from_: Annotated[str, Query(alias="from", description=TIME_HELP)] = "-1h",
    to: Annotated[str, Query(description=TIME_HELP)] = "now",
    step: Annotated[
        str | None,
        Query(description="Bucket width: `5s`, `1m`, `1h`, or ms. None: raw rows."),
    ] = None,
) -> Response:
    """Raw rows (`value`) or buckets (`open`, `high`, `low`, `close`, `avg`, `count`,
    `missing`): a step of whole minutes or hours reads the rollup tiers. Holes between rows
    are listed in `gaps`, never filled."""
    entity = check_entity_glob(entity)
    metrics = check_metric_globs(metric)
    ctx.check_metric_names(metrics)
    now = ctx.now_ms()
    start = parse_time(from_, now_ms=now, name="from")
    end = parse_time(to, now_ms=now, name="to")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end})")
    step_ms = parse_step(step) if step is not None else None
    n_series = len(ctx.select(entity, metrics))
    rows = await estimated_rows(ctx, n_series, start, end, step_ms)
    if rows > ctx.max_points:
        raise ParamError(_too_many(rows, ctx.max_points, n_series))
    query = base.Query(start, end, entity=entity, metrics=metrics, step_ms=step_ms)
    result = await run_in_threadpool(ctx.store.query, query)
    if len(result) > ctx.max_points:
        raise ParamError(_too_many(len(result), ctx.max_points, n_series))
    # Streamed in pieces encoded in a worker thread: the first megabytes travel while the rest
    # is encoded, and the event loop never holds a whole answer's encoding.
    parts = series_json_parts(result, start, end)
    return StreamingResponse(parts, media_type="application/json")


async def estimated_rows(
    ctx: ApiContext, n_series: int, start: int, end: int, step_ms: int | None
) -> int:
    """Rows the query may return: one per step (raw: per `raw_interval_ms`) over the part of
    [start, end) up to the newest sample, and, when that is too many, no more than the store
    holds for so many series (its row counts, shared evenly): the data's extent, not the
    range's."""
    newest = ctx.newest_sample_ms()
    if newest is not None:
        end = min(end, newest + 1)
    if end <= start or n_series == 0:
        return 0
    rows = n_series * ((end - start) // (step_ms or ctx.raw_interval_ms) + 1)
    if rows <= ctx.max_points:
        return rows
    stats = await run_in_threadpool(ctx.store.stats)
    held = stats.n_raw_rows + stats.n_head_rows + stats.n_rollup_1m_rows + stats.n_rollup_1h_rows
    share = n_series / max(1, stats.n_series, len(ctx.registry))
    return min(rows, round(held * share) + n_series)  # + an open bucket per series


def _too_many(rows: int, limit: int, n_series: int) -> str:
    return (
        f"this query would return about {rows:,} rows ({n_series} series), more than "
        f"{limit:,}: narrow the range, the entity or the metrics, or give a larger step"
    )
