"""GET /status: version, uptime, WebSocket clients, ingest rate, store size; notifier and
store-writer counters, silent sources."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep, HubDep
from rackwatch.api.params import iso
from rackwatch.api.prometheus import writer_counts
from rackwatch.api.schemas import (
    NotifierStatusOut,
    RetentionOut,
    RetentionRunOut,
    StatusOut,
    StoreStatusOut,
    WriterStatusOut,
)
from rackwatch.engine.retention import RetentionRunner

router = APIRouter(tags=["status"], dependencies=[READ_ACCESS])


@router.get("/status")
async def get_status(ctx: CtxDep, hub: HubDep, request: Request) -> StatusOut:
    alerts = ctx.alerts  # read on the loop, where the engine changes its counters
    notifiers = {} if alerts is None else alerts.notifier_stats()
    silent = [] if alerts is None else alerts.silent_sources()
    writer = getattr(request.app.state, "writer", None)  # prometheus.watch_writer sets it
    stats = await run_in_threadpool(ctx.store.stats)
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
