"""The reports in `rackwatch run`'s wiring: `[reports]` builds the reporter and its schedule,
which makes the due reports at start in a worker thread and stops with the run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from rackwatch import app
from rackwatch.model import Batch
from rackwatch.settings import load_settings


def test_run_live_makes_the_due_reports_and_serves_the_archive(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        twin={"enabled": False},
        host={"enabled": False},
        intelligence={"enabled": False},
        site={"timezone": "Europe/Paris"},
        reports={"formats": ["json"], "keep": 5},
    )
    services = app.build_services(settings)
    schedule = services.report_schedule
    assert schedule is not None and services.reporter is not None
    assert services.reporter.zone.key == "Europe/Paris" and services.reporter.keep == 5
    assert services.api.state.ctx.reports is services.reporter
    # A power reading every hour of the last 40 days: every due period holds data.
    now_h = time.time_ns() // 3_600_000_000_000 * 3_600_000
    ts = now_h - np.arange(40 * 24, dtype=np.int64)[::-1] * 3_600_000
    sid = services.registry.intern("c01/r01/s01", "power_watts")
    services.store.write(
        Batch.from_grid(ts, np.array([sid], np.int32), np.full((len(ts), 1), 300.0))
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        while len(schedule.made) < 3:  # the newest due day, week and month
            await asyncio.sleep(0.05)
        stop.set()
        await runner

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
        names = {e.name.split("-")[0] for e in services.reporter.archive.entries()}
        assert names == {"day", "week", "month"}
        assert all(e.to_dict()["formats"] == ["json"] for e in services.reporter.archive.entries())
        assert (tmp_path / "reports" / "day").is_dir()
    finally:
        services.close()


def test_the_schedule_can_be_turned_off(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, twin={"enabled": False}, reports={"enabled": False})
    services = app.build_services(settings)
    try:
        assert services.report_schedule is None
        assert services.reporter is not None  # POST /reports still makes one
    finally:
        services.close()


def test_a_fresh_install_archives_no_empty_report(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        twin={"enabled": False},
        host={"enabled": False},
        intelligence={"enabled": False},
        reports={"formats": ["json"]},
    )
    services = app.build_services(settings)
    schedule = services.report_schedule
    assert schedule is not None and services.reporter is not None

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        while len(schedule.skipped) < 3:  # day, week and month: nothing stored yet
            await asyncio.sleep(0.05)
        stop.set()
        await runner

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
        assert schedule.made == [] and services.reporter.archive.entries() == []
    finally:
        services.close()
