"""GET /plot: a picture (PNG or SVG) of stored series over a period, for a report or a ticket.

The rows are read as /series reads them and drawn by `charts.render` in a worker thread, one
picture at a time (drawing costs tens of milliseconds of CPU: never on the event loop that
drives the fans, and never many at once).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from rackwatch.api import charts
from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep
from rackwatch.api.params import (
    ParamError,
    check_entity_glob,
    check_metric_globs,
    parse_step,
    parse_time,
)
from rackwatch.api.routes.series import TIME_HELP
from rackwatch.api.schemas import ErrorOut
from rackwatch.store import base

router = APIRouter(tags=["series"], dependencies=[READ_ACCESS])

TARGET_POINTS = 1500
"""Points per line a picture wants: a longer range is drawn from buckets (the rollup tiers)."""
RAW_INTERVAL_MS = 5000
_drawing = threading.Lock()
"""One picture at a time (held in the worker thread, so no event loop waits on it)."""


MAX_POINTS_PER_LINE = 50_000
"""More than a picture can show: a finer step over a long range is refused (it would load
and draw millions of rows)."""


def check_points(start_ms: int, end_ms: int, step_ms: int | None) -> None:
    """ParamError when the range holds more than MAX_POINTS_PER_LINE buckets of `step_ms`
    (None: raw samples, one per RAW_INTERVAL_MS)."""
    points = (end_ms - start_ms) // (step_ms or RAW_INTERVAL_MS)
    if points > MAX_POINTS_PER_LINE:
        raise ParamError(
            f"{points:,} points per line for this range and step; a picture takes at most "
            f"{MAX_POINTS_PER_LINE:,}: give a coarser step (or none) or a shorter range"
        )


def auto_step_ms(start_ms: int, end_ms: int) -> int | None:
    """None (raw rows) while the range holds at most TARGET_POINTS raw samples, else the
    bucket width that gives about that many, in whole seconds.

    >>> auto_step_ms(0, 3_600_000) is None, auto_step_ms(0, 7 * 86_400_000)
    (True, 404000)
    """
    span = end_ms - start_ms
    if span <= TARGET_POINTS * RAW_INTERVAL_MS:
        return None
    return -(-span // TARGET_POINTS // 1000) * 1000


@router.get(
    "/plot",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}},
        400: {"model": ErrorOut},
    },
)
async def get_plot(
    ctx: CtxDep,
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")],
    metric: Annotated[list[str], Query(description="Metric names or globs (repeatable).")],
    from_: Annotated[str, Query(alias="from", description=TIME_HELP)] = "-1h",
    to: Annotated[str, Query(description=TIME_HELP)] = "now",
    step: Annotated[
        str | None,
        Query(description="Bucket width (`1m`, `1h`, ms) \\[default: about 1,500 points]."),
    ] = None,
    image_format: Annotated[
        str, Query(alias="format", description="`png` or `svg`.", pattern="^(png|svg)$")
    ] = "png",
    width: Annotated[int, Query(ge=charts.WIDTH_PX[0], le=charts.WIDTH_PX[1])] = 1200,
    height: Annotated[int, Query(ge=charts.HEIGHT_PX[0], le=charts.HEIGHT_PX[1])] = 500,
) -> Response:
    """The series of `entity` and `metric` between `from` and `to`, drawn: one line per
    series, buckets with their low-high band, a second unit on the right axis. 400 when no
    series matches, more than 12 do, or they have more than two units."""
    entity = check_entity_glob(entity)
    metrics = check_metric_globs(metric)
    ctx.check_metric_names(metrics)
    now = ctx.now_ms()
    start = parse_time(from_, now_ms=now, name="from")
    end = parse_time(to, now_ms=now, name="to")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end})")
    n_series = len(ctx.select(entity, metrics))
    if n_series > charts.MAX_SERIES:
        raise ParamError(
            f"{n_series} series match; a picture holds at most {charts.MAX_SERIES}: "
            "narrow the entity or the metrics"
        )
    step_ms = parse_step(step) if step is not None else auto_step_ms(start, end)
    check_points(start, end, step_ms)
    query = base.Query(start, end, entity=entity, metrics=metrics, step_ms=step_ms)
    title = f"{entity}: {', '.join(metrics or ())}"

    def draw() -> bytes:
        result = ctx.store.query(query)
        with _drawing:
            return charts.render(
                charts.series_of(result),
                title=title,
                fmt=image_format,
                width_px=width,
                height_px=height,
            )

    try:
        picture = await run_in_threadpool(draw)
    except charts.ChartError as exc:
        raise ParamError(str(exc)) from None
    return Response(picture, media_type=charts.FORMATS[image_format])
