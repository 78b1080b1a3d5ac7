"""GET /live: the newest value of every matching series, per entity, with its age."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep
from rackwatch.api.encode import live_json
from rackwatch.api.params import check_entity_glob, check_metric_globs
from rackwatch.api.schemas import ErrorOut, LiveOut

router = APIRouter(tags=["live"], dependencies=[READ_ACCESS])


@router.get("/live", response_model=LiveOut, responses={400: {"model": ErrorOut}})
async def get_live(
    ctx: CtxDep,
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    metric: Annotated[
        list[str] | None, Query(description="Metric names or globs (repeatable).")
    ] = None,
) -> Response:
    """From the in-memory live state table (no store query)."""
    metrics = check_metric_globs(metric)
    ctx.check_metric_names(metrics)
    ids = ctx.select(check_entity_glob(entity), metrics)
    ts, value = ctx.live.snapshot()
    body = live_json(ctx.registry.keys(), ids, ts, value, ctx.now_ms())
    return Response(body, media_type="application/json")
