"""Health, failure predictions and anomalies (seed 002's three routes, and the anomalies).

- GET /health/now: every entity's health now, per device and rolled up (racks, clusters, the
  room), from the intelligence consumer (503 without it);
- GET /health: the stored `health_score` samples over a range (one a minute), or buckets;
- GET /predictions: the failure predictions made over a range, from the stored
  `prediction.*` events, with the consumer's current forecast where it has one;
- GET /anomalies: the anomalies that overlap a range, from the stored `anomaly.*` events,
  open ones first (the consumer says which are open).

The three history routes answer from the store, so they work without the consumer too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext, CtxDep, IntelligenceDep
from rackwatch.api.params import (
    ParamError,
    check_entity_glob,
    excerpt,
    parse_step,
    time_range,
)
from rackwatch.api.routes.series import TIME_HELP, estimated_rows
from rackwatch.api.schemas import (
    AnomaliesOut,
    AnomalyOut,
    AppSignalOut,
    CriticityName,
    ErrorOut,
    HealthNowOut,
    HealthNowsOut,
    HealthRangeOut,
    HealthSeriesOut,
    NextFailureOut,
    PredictionOut,
    PredictionsOut,
    ReasonOut,
)
from rackwatch.engine.health import Health, app_criticity, criticity_of_health
from rackwatch.engine.intelligence import HEALTH_METRIC, FanPrediction, Snapshot
from rackwatch.model import Event, EventKind
from rackwatch.model.entity import compile_pattern
from rackwatch.store import base

router = APIRouter(tags=["health"], dependencies=[READ_ACCESS])

ENTITY_HELP = "Entity glob: `*` one segment, `**` any."
HEALTH_INTERVAL_MS = 60_000
"""The stored samples' interval (`[intelligence] health_interval_seconds`), to size answers."""
CRITICITIES: tuple[str, ...] = get_args(CriticityName)
EntityQ = Annotated[str, Query(description=ENTITY_HELP)]
FromQ = Annotated[str, Query(alias="from", description=TIME_HELP)]
ToQ = Annotated[str, Query(description=TIME_HELP)]


def _range(ctx: ApiContext, from_: str, to: str) -> tuple[int, int, int]:
    now = ctx.now_ms()
    return (now, *time_range(from_, to, now_ms=now))


# --- now -----------------------------------------------------------------------------------


@router.get(
    "/health/now",
    response_model=HealthNowsOut,
    responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def get_health_now(
    intelligence: IntelligenceDep,
    entity: EntityQ = "**",
    criticity: Annotated[
        list[str] | None, Query(description="Only these classes: low, medium, high, critical.")
    ] = None,
) -> Response:
    """Health 0-100, criticity, reasons, predicted health and the next failure of every
    matching entity, devices and their racks, clusters and room (computed at most every 5 s)."""
    pattern = compile_pattern(check_entity_glob(entity))
    for c in criticity or ():
        if c not in CRITICITIES:
            raise ParamError(f"unknown criticity {excerpt(c)}: use low, medium, high, critical")
    report = await intelligence.health()

    def encoded() -> bytes:
        # thousands of entities at 2,000 servers: built and encoded off the event loop
        snap = report.snapshot  # the clocks its etas count from
        entities = {
            path: health_out(h, report.now_ms, snap.now_of, _app_values(snap, path))
            for path, h in sorted(report.entities.items())
            if pattern.match(path) and (not criticity or str(h.criticity) in criticity)
        }
        # `app` only where there is one (a scraped application): the others' answers unchanged
        no_app = {path: {"app"} for path, h in entities.items() if h.app is None}
        answer = HealthNowsOut(now_ms=report.now_ms, horizon_s=report.horizon_s, entities=entities)
        return answer.model_dump_json(exclude={"entities": no_app}).encode()

    return Response(await run_in_threadpool(encoded), media_type="application/json")


def _app_values(snap: Snapshot, path: str) -> Mapping[str, float] | None:
    found = snap.app_signals.get(path)
    return None if found is None else found.values


def health_out(
    h: Health,
    now_ms: int,
    now_of: Callable[[str], int | None],
    app: Mapping[str, float] | None = None,
) -> HealthNowOut:
    """`now_of(device)`: the clock a device's forecast counts down on (its source's); `app`:
    the entity's seed 002 application signals, if any."""
    nf = h.next_failure
    return HealthNowOut(
        score=round(h.score, 1),
        criticity=_criticity(str(h.criticity)),
        predicted_score=round(h.predicted_score, 1),
        predicted_criticity=_criticity(str(h.predicted_criticity)),
        next_failure=None
        if nf is None
        else NextFailureOut(
            entity=nf.entity,
            what=nf.what,
            eta_s=round(nf.eta_s, 1),
            low_s=None if nf.low_s is None else round(nf.low_s, 1),
            high_s=None if nf.high_s is None else round(nf.high_s, 1),
            failure_ms=(now_of(nf.entity) or now_ms) + round(nf.eta_s * 1000),
        ),
        reasons=[
            ReasonOut(
                entity=r.entity, kind=r.kind.value, detail=r.detail, penalty=round(r.penalty, 1)
            )
            for r in h.reasons
        ],
        n_members=h.n_members,
        app=None
        if app is None
        else {
            signal: AppSignalOut(
                value=round(value, 4), criticity=app_criticity(signal, value).value
            )
            for signal, value in app.items()
        },
    )


def _criticity(name: str) -> CriticityName:
    found: CriticityName = name if name in CRITICITIES else "critical"  # type: ignore[assignment]
    return found


# --- over a range ----------------------------------------------------------------------------


@router.get("/health", responses={400: {"model": ErrorOut}})
async def get_health(
    ctx: CtxDep,
    entity: EntityQ = "**",
    from_: FromQ = "-24h",
    to: ToQ = "now",
    step: Annotated[
        str | None, Query(description="Bucket width (`1h`, `1d`...); none: every sample.")
    ] = None,
) -> HealthRangeOut:
    """The stored health samples (one a minute) of the matching entities, or their
    per-bucket mean and lowest score."""
    entity = check_entity_glob(entity)
    _now, start, end = _range(ctx, from_, to)
    step_ms = parse_step(step) if step is not None else None
    n_series = len(ctx.select(entity, [HEALTH_METRIC]))
    rows = await estimated_rows(ctx, n_series, start, end, step_ms or HEALTH_INTERVAL_MS)
    if rows > ctx.max_points:
        raise ParamError(
            f"this query would return about {rows:,} health samples ({n_series} entities), "
            f"more than {ctx.max_points:,}: narrow the range or the entity, or give a step"
        )
    query = base.Query(start, end, entity=entity, metrics=HEALTH_METRIC, step_ms=step_ms)
    result = await run_in_threadpool(ctx.store.query, query)
    bucketed = result.tier is not base.Tier.RAW or result.bucket_ms > 0
    entities = []
    for key, columns in result:
        score = columns["avg"] if bucketed else columns["value"]
        low = columns["low"] if bucketed else score
        finite = low[low == low]  # NaN != NaN
        entities.append(
            HealthSeriesOut(
                entity=key.entity,
                ts=columns["ts"].tolist(),
                score=_floats(score),
                low=_floats(low) if bucketed else None,
                worst_criticity=_criticity(str(criticity_of_health(float(finite.min()))))
                if len(finite)
                else None,
            )
        )
    return HealthRangeOut(
        tier=result.tier.value,
        bucket_ms=result.bucket_ms,
        from_ms=start,
        to_ms=end,
        entities=sorted(entities, key=lambda e: e.entity),
    )


def _floats(values: Any) -> list[float | None]:
    return [None if v != v else round(float(v), 1) for v in values.tolist()]


# --- predictions -----------------------------------------------------------------------------


@router.get("/predictions", responses={400: {"model": ErrorOut}})
async def get_predictions(
    ctx: CtxDep,
    entity: EntityQ = "**",
    from_: FromQ = "-24h",
    to: ToQ = "now",
) -> PredictionsOut:
    """Failure predictions made in [from, to), one per device: its newest forecast (the
    consumer's current one while it predicts the failure), eta counted from now."""
    entity = check_entity_glob(entity)
    now, start, end = _range(ctx, from_, to)
    kinds = [str(EventKind.PREDICTION_FAN_FAILURE), str(EventKind.PREDICTION_CLEARED)]
    events = await run_in_threadpool(ctx.store.events, start, end, entity, kinds)
    current: dict[str, tuple[FanPrediction, int]] = {}
    if ctx.intelligence is not None and end >= now:
        pattern = compile_pattern(entity)
        snap = ctx.intelligence.snapshot
        current = {  # counted down on the fan's own source clock
            e: (p, snap.now_of(e) or now) for e, p in snap.predictions.items() if pattern.match(e)
        }
    by_entity: dict[str, list[Event]] = {}
    for event in events:
        by_entity.setdefault(event.entity, []).append(event)
    found = [
        _prediction(name, by_entity.get(name, []), current.get(name), now)
        for name in sorted({*by_entity, *current})
    ]
    found.sort(key=_prediction_order)
    return PredictionsOut(now_ms=now, from_ms=start, to_ms=end, predictions=found)


def _prediction(
    entity: str, events: Sequence[Event], current: tuple[FanPrediction, int] | None, now: int
) -> PredictionOut:
    first = events[0].ts if events else (current[0].as_of_ms if current else now)
    made = {"first_made_ms": first, "n_updates": len(events)}
    if current is not None:
        forecast, clock = current
        return PredictionOut(
            entity=entity,
            what="fan wear",
            status="failed" if forecast.eta_s == 0 else "active",
            made_ms=forecast.as_of_ms,
            **made,
            **_etas(forecast.attributes(), clock),
        )
    latest = events[-1]
    a = dict(latest.attributes)
    if latest.kind == EventKind.PREDICTION_CLEARED:
        nothing = dict.fromkeys(("eta_s", "low_s", "high_s", "ratio_now"))
        ms = dict.fromkeys(("failure_ms", "failure_low_ms", "failure_high_ms"))
        return PredictionOut(
            entity=entity,
            what=str(a.get("what", "fan wear")),
            status="cleared",
            made_ms=latest.ts,
            **made,
            **nothing,
            **ms,
        )
    return PredictionOut(
        entity=entity,
        what=str(a.get("what", "fan wear")),
        status="failed" if a.get("eta_s") == 0 else "active",
        made_ms=latest.ts,
        **made,
        **_etas(a, now),
    )


def _etas(a: dict[str, Any], now: int) -> dict[str, Any]:
    """eta, low and high (s) counted from `now`, and the instants, from a forecast's fields."""

    def left(at: Any) -> float | None:
        return None if at is None else round(max(0.0, (int(at) - now) / 1000.0), 1)

    failure = a.get("failure_ms")
    return {
        "eta_s": 0.0 if a.get("eta_s") == 0 else left(failure),
        "low_s": left(a.get("failure_low_ms")),
        "high_s": left(a.get("failure_high_ms")),
        "failure_ms": failure,
        "failure_low_ms": a.get("failure_low_ms"),
        "failure_high_ms": a.get("failure_high_ms"),
        "ratio_now": a.get("ratio_now"),
    }


def _prediction_order(p: PredictionOut) -> tuple[int, float, str]:
    if p.status == "cleared":
        return (1, -p.made_ms, p.entity)
    return (0, float(p.failure_ms if p.failure_ms is not None else 0), p.entity)


# --- anomalies -------------------------------------------------------------------------------


@dataclass
class _Anomaly:
    entity: str
    metric: str
    detector: str
    start_ms: int
    end_ms: int | None = None
    score: float | None = None
    peak: float | None = None
    z: float | None = None


@router.get("/anomalies", responses={400: {"model": ErrorOut}})
async def get_anomalies(
    ctx: CtxDep,
    entity: EntityQ = "**",
    from_: FromQ = "-24h",
    to: ToQ = "now",
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 200,
) -> AnomaliesOut:
    """Anomalies that overlap [from, to) on the matching entities, open ones first."""
    entity = check_entity_glob(entity)
    now, start, end = _range(ctx, from_, to)
    kinds = [str(EventKind.ANOMALY_STARTED), str(EventKind.ANOMALY_ENDED)]
    # ends after `to` still close anomalies that started before it
    events = await run_in_threadpool(ctx.store.events, start, max(end, now + 1), entity, kinds)
    found: dict[tuple[str, str, int], _Anomaly] = {}
    for event in events:
        a = event.attributes
        key = (event.entity, str(a.get("metric")), int(a.get("start", event.ts)))
        record = found.setdefault(
            key, _Anomaly(key[0], key[1], str(a.get("detector")), key[2], z=a.get("z"))
        )
        record.score, record.peak = a.get("score"), a.get("peak")
        if event.kind == EventKind.ANOMALY_ENDED:
            record.end_ms = event.ts
    live: set[tuple[str, str, int]] | None = None
    if ctx.intelligence is not None:
        pattern = compile_pattern(entity)
        live = set()
        for o in ctx.intelligence.snapshot.open_anomalies:
            if not pattern.match(o.entity):
                continue
            key = (o.entity, o.metric, o.start_ms)
            live.add(key)
            record = found.setdefault(key, _Anomaly(o.entity, o.metric, o.detector, o.start_ms))
            record.score, record.peak, record.z = round(o.score, 4), round(o.peak, 4), o.z
    rows = []
    for key, r in found.items():
        if r.start_ms >= end or (r.end_ms is not None and r.end_ms < start):
            continue
        is_open = key in live if live is not None else r.end_ms is None
        rows.append(
            AnomalyOut(
                entity=r.entity,
                metric=r.metric,
                detector=r.detector,
                start_ms=r.start_ms,
                end_ms=r.end_ms,
                is_open=is_open,
                score=r.score,
                peak=r.peak,
                z=r.z,
            )
        )
    rows.sort(key=lambda r: (not r.is_open, -(r.start_ms if r.is_open else r.end_ms or 0)))
    return AnomaliesOut(now_ms=now, n_open=sum(r.is_open for r in rows), anomalies=rows[:limit])
