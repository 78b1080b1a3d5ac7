"""GET /recommend and /recommend/placement: the GPU recommendation over the live state (seed
004's `like_index` and `like_server`; the rules are in `engine/recommend`).

A machine the alert engine calls UNKNOWN (silent for its source's timeout), in maintenance or
FAILED is never recommended. Without the alert engine, a machine whose newest sample is older
than its timeout is offline: `[host] offline_after_seconds` against the wall clock for the real
machines (`host/...`), `STALE_AFTER_S` against the newest sample for the others (the twin's
clock may run ahead of the wall clock).

Cost: where each series goes is worked out once per registry size (a pass over the GPU and
machine series, in a thread); a request is then an inventory read, NumPy over the series and
one explanation per machine, in worker threads. Only the alert engine's answers are read on
the event loop (one dict lookup per machine), since the loop owns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext, CtxDep
from rackwatch.api.recommend_out import PlacementOut, RecommendOut, placement_out, recommend_out
from rackwatch.api.schemas import ErrorOut
from rackwatch.engine.recommend import (
    METRICS,
    Assessment,
    Fleet,
    FleetLayout,
    Job,
    assess,
    exclusions,
    fleet_layout,
    gather,
)
from rackwatch.engine.recommend.availability import StateOf
from rackwatch.engine.recommend.placement import (
    MAX_CORES,
    MAX_GPU_MEMORY_GB,
    MAX_GPUS,
    MAX_MEMORY_GB,
)

router = APIRouter(tags=["recommend"], dependencies=[READ_ACCESS])

STALE_AFTER_S = 60.0
"""Without the alert engine: a machine other than a real host is offline after this long
without a sample (the alert engine's own default, `[alerting] unknown_after_seconds`)."""
MAX_LIMIT = 10_000
HOST_ROOT = "host/"


@dataclass(frozen=True, slots=True)
class _Cached:
    n_series: int
    layout: FleetLayout


@router.get("/recommend", response_model=RecommendOut, responses={400: {"model": ErrorOut}})
async def get_recommend(
    request: Request,
    ctx: CtxDep,
    cards: Annotated[
        bool, Query(description="Give each machine's cards (false: the machines only).")
    ] = True,
) -> Response:
    """Every GPU machine's like index (high, medium, low) with why, its free GPU memory and
    cards, and the top 3 by free GPU memory (`like_server`)."""
    assessment, now_ms = await current_assessment(request, ctx)

    def encode() -> bytes:
        return recommend_out(assessment, now_ms, "live", cards).model_dump_json().encode()

    return Response(await run_in_threadpool(encode), media_type="application/json")


@router.get(
    "/recommend/placement",
    response_model=PlacementOut,
    responses={400: {"model": ErrorOut}},
)
async def get_placement(
    request: Request,
    ctx: CtxDep,
    gpus: Annotated[int, Query(ge=1, le=MAX_GPUS, description="Cards the job needs.")] = 1,
    gpu_memory_gb: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_GPU_MEMORY_GB,
            allow_inf_nan=False,
            description="Free memory needed on each card, in GB (GiB, 2^30 bytes).",
        ),
    ] = 0.0,
    cores: Annotated[int, Query(ge=0, le=MAX_CORES, description="Free CPU cores needed.")] = 0,
    memory_gb: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_MEMORY_GB,
            allow_inf_nan=False,
            description="Available memory needed, in GB (GiB).",
        ),
    ] = 0.0,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description="At most this many candidates, and rejections."),
    ] = 50,
) -> Response:
    """The machines that can take the job, best first, each with why; and those that cannot,
    with the reason (not enough fitting cards, cores or memory; offline...)."""
    job = Job(gpus=gpus, gpu_memory_gb=gpu_memory_gb, cores=cores, memory_gb=memory_gb)
    assessment, now_ms = await current_assessment(request, ctx)

    def encode() -> bytes:
        placement = assessment.place(job, limit)
        return placement_out(assessment, placement, now_ms, "live").model_dump_json().encode()

    return Response(await run_in_threadpool(encode), media_type="application/json")


async def current_assessment(request: Request, ctx: ApiContext) -> tuple[Assessment, int]:
    """The assessment of the live state now, and the time it is for (the newest sample's or
    the wall clock's, whichever is later)."""
    layout = await _layout(request, ctx)
    ts, value = ctx.live.snapshot()
    fleet = await run_in_threadpool(_gather, ctx, layout, ts, value)
    state_of = None if ctx.alerts is None else _state_reader(ctx)
    # The alert engine's view is read here, on the loop that updates it.
    states = (
        None if state_of is None else {machine: state_of(machine) for machine in fleet.machines}
    )
    now_ms, wall_ms = ctx.now_ms(), ctx.clock_ms()
    offline_after_ms = round(ctx.host_offline_after_s * 1000)

    def run() -> Assessment:
        excluded = exclusions(
            fleet.machines,
            fleet.last_seen_ms.tolist(),
            now_ms=lambda m: wall_ms if m.startswith(HOST_ROOT) else now_ms,
            stale_after_ms=lambda m: (
                offline_after_ms if m.startswith(HOST_ROOT) else round(STALE_AFTER_S * 1000)
            ),
            state_of=None if states is None else states.__getitem__,
        )
        return assess(fleet, excluded)

    return await run_in_threadpool(run), now_ms


async def _layout(request: Request, ctx: ApiContext) -> FleetLayout:
    """The layout for the registry's series, cached on the app until the registry grows."""
    cached: _Cached | None = getattr(request.app.state, "recommend_layout", None)
    n_series = len(ctx.registry)
    if cached is not None and cached.n_series == n_series:
        return cached.layout
    ids = ctx.select("**", list(METRICS))
    keys = ctx.registry.keys()
    layout = await run_in_threadpool(
        lambda: fleet_layout([(keys[i].entity, keys[i].metric) for i in ids.tolist()], ids)
    )
    request.app.state.recommend_layout = _Cached(n_series, layout)
    return layout


def _gather(ctx: ApiContext, layout: FleetLayout, ts: Any, value: Any) -> Fleet:
    inventory: Mapping[str, Mapping[str, Any]] = {
        record.path: record.attributes for record in ctx.store.inventory()
    }
    return gather(layout, ts, value, inventory)


def _state_reader(ctx: ApiContext) -> StateOf:
    alerts = ctx.alerts
    assert alerts is not None

    def state_of(machine: str) -> tuple[str | None, bool | None, str]:
        details = alerts.state_details(machine)
        if details is None:
            return None, alerts.is_reporting(machine), ""
        return str(details["state"]), alerts.is_reporting(machine), str(details["reason"] or "")

    return state_of
