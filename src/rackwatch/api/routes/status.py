"""GET /status: version, uptime, WebSocket clients, ingest rate, store size; notifier and
store-writer counters, silent sources; the intelligence's KPIs (anomalies and incidents per
day, detection latency of labelled faults, the model in use)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext, CtxDep, HubDep
from rackwatch.api.params import iso
from rackwatch.api.prometheus import writer_counts
from rackwatch.api.schemas import (
    IntelligenceStatusOut,
    LatencyOut,
    ModelOut,
    NotifierStatusOut,
    RetentionOut,
    RetentionRunOut,
    StatusOut,
    StoreStatusOut,
    WriterStatusOut,
)
from rackwatch.engine.evaluation.live import DAY_MS, KINDS, LiveKpis, live_kpis
from rackwatch.engine.retention import RetentionRunner

KPI_CACHE_S = 30.0
"""The KPIs read a day of stored events: computed at most this often, in a thread."""
KPI_WAIT_S = 0.02
"""How long /status waits for fresh KPIs before it answers with the last ones (null at
first): the route must answer fast whatever the store is doing."""
KPI_MAX_EVENTS = 200_000
T = TypeVar("T")


@dataclass(slots=True)
class _Refreshed(Generic[T]):
    """A value computed in a thread and reused for `max_age_s`; while a new one takes longer
    than `wait_s`, the last one is answered (the route never waits on a busy store for long).
    """

    max_age_s: float
    wait_s: float
    value: T | None = None
    at: float = -math.inf
    task: asyncio.Task[T] | None = None

    async def get(self, compute: Callable[[], T]) -> T | None:
        if self.task is None and time.monotonic() - self.at > self.max_age_s:
            self.task = asyncio.create_task(run_in_threadpool(compute))
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=self.wait_s)
            if done:
                task, self.task = self.task, None
                self.at = time.monotonic()
                try:
                    self.value = task.result()
                except Exception:  # a store error: keep the last value, try again later
                    log.exception("refreshing a /status figure failed")
        return self.value


def _refreshed(request: Request, name: str, max_age_s: float, wait_s: float) -> _Refreshed[Any]:
    found: _Refreshed[Any] | None = getattr(request.app.state, name, None)
    if found is None:
        found = _Refreshed(max_age_s, wait_s)
        setattr(request.app.state, name, found)
    return found


async def _kpis(ctx: ApiContext, request: Request) -> LiveKpis | None:
    """The KPIs, recomputed off the loop when older than `KPI_CACHE_S`; the last ones (or
    none yet) while a computation runs longer than `KPI_WAIT_S`."""
    now = ctx.newest_sample_ms() or ctx.now_ms()

    def compute() -> LiveKpis:
        events = ctx.store.events(now - DAY_MS, now + 1, kinds=KINDS, newest=KPI_MAX_EVENTS)
        return live_kpis(events, now)

    kpis: LiveKpis | None = await _refreshed(request, "kpis", KPI_CACHE_S, KPI_WAIT_S).get(compute)
    return kpis


router = APIRouter(tags=["status"], dependencies=[READ_ACCESS])
log = logging.getLogger(__name__)


@router.get("/status")
async def get_status(ctx: CtxDep, hub: HubDep, request: Request) -> StatusOut:
    alerts = ctx.alerts  # read on the loop, where the engine changes its counters
    notifiers = {} if alerts is None else alerts.notifier_stats()
    silent = [] if alerts is None else alerts.silent_sources()
    writer = getattr(request.app.state, "writer", None)  # prometheus.watch_writer sets it
    stats = await run_in_threadpool(ctx.store.usage)  # no row counts: they take the lock
    return StatusOut(
        version=ctx.version,
        started_at=iso(int(ctx.started_at_s * 1000)),
        uptime_s=round(time.time() - ctx.started_at_s, 3),
        ws_clients=hub.n_clients,
        ingest_samples_per_s=round(ctx.live.meter.rate(), 3),
        samples_total=ctx.live.meter.total,
        store_bytes=stats.bytes_on_disk,
        n_series=len(ctx.registry),
        scenario=ctx.scenario,
        sim_time_ms=ctx.newest_sample_ms(),
        store=StoreStatusOut(
            log_bytes=stats.log_bytes,
            head_samples=stats.n_head_rows,
            duplicates_dropped=stats.n_duplicates,
            expired_dropped=stats.n_expired,
            retention=None if ctx.retention is None else _retention(ctx.retention),
        ),
        notifiers={name: NotifierStatusOut(**counts) for name, counts in notifiers.items()},
        silent_sources=silent,
        writer=None if writer is None else _writer(writer_counts(writer)),
        intelligence=await _intelligence(ctx, request),
    )


async def _intelligence(ctx: ApiContext, request: Request) -> IntelligenceStatusOut | None:
    intelligence = ctx.intelligence
    if intelligence is None:
        return None
    kpis = await _kpis(ctx, request)
    snap = intelligence.snapshot
    model = intelligence.model
    return IntelligenceStatusOut(
        window_s=DAY_MS / 1000.0,
        anomalies_per_day=None if kpis is None else kpis.anomalies_per_day,
        incidents_per_day=None if kpis is None else kpis.incidents_per_day,
        incidents_open=len(snap.incidents),
        anomalies_open=len(snap.open_anomalies),
        detection_latency_s=LatencyOut(
            median=None if kpis is None else kpis.latency_median_s,
            p95=None if kpis is None else kpis.latency_p95_s,
            n_faults=0 if kpis is None else kpis.n_faults,
            n_detected=0 if kpis is None else kpis.n_detected,
        ),
        model=ModelOut(
            version=None if model is None else model.version,
            trained_at=None if model is None else model.trained_at_ms,
            n_devices=0 if model is None else model.n_devices,
        ),
    )


def _writer(counts: dict[str, int]) -> WriterStatusOut:
    return WriterStatusOut(
        samples_written=counts["n_samples"],
        events_written=counts["n_events"],
        errors=counts["n_errors"],
        dropped=counts["n_dropped"],
        quarantined=counts["n_quarantined"],
    )


def _retention(runner: RetentionRunner) -> RetentionOut:
    last = runner.last
    return RetentionOut(
        interval_s=runner.interval_s,
        n_runs=runner.n_runs,
        n_errors=runner.n_errors,
        last=None
        if last is None
        else RetentionRunOut(
            at=iso(last.at_ms),
            now_ms=last.now_ms,
            deleted=last.deleted,
            seconds=round(last.seconds, 3),
        ),
        deleted_total=dict(runner.deleted_total),
    )
