"""A data directory used again: reruns of simulate, restarts of run, retention inside run,
and private files. Never two values for one instant, never an overlap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from rackwatch import app
from rackwatch.cli import cli
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

runner = CliRunner()
START = "2026-01-01"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 5_000


def simulate(out: Path, *extra: str, hours: str = "1") -> tuple[int, str]:
    args = ["simulate", "-s", "small", "--hours", hours, "--out", str(out), *extra]
    result = runner.invoke(cli, args, env={"COLUMNS": "200"})
    return result.exit_code, result.output


RACKWATCH = [sys.executable, "-m", "rackwatch"]  # the console entry point, as a user runs it


def as_a_user(*args: str) -> tuple[int, str]:
    """Run a command through the entry point: errors are printed, exit status 2."""
    proc = subprocess.run(
        [*RACKWATCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    return proc.returncode, proc.stdout + proc.stderr


def simulate_as_a_user(out: Path, *extra: str) -> tuple[int, str]:
    return as_a_user("simulate", "-s", "small", "--hours", "1", "--out", str(out), *extra)


def stored(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series, ts, value) of every raw sample, grouped by series, in time order."""
    with contextlib.closing(app.open_store(load_settings(), SeriesRegistry(), data_dir)) as s:
        result = s.query(Query(0, 2**62, tier="raw"))
    series = np.repeat(result.series_ids, np.diff(result.offsets))
    return series, result.ts, result["value"]


def assert_one_value_per_instant(series: np.ndarray, ts: np.ndarray) -> None:
    same_series = series[1:] == series[:-1]
    assert (np.diff(ts)[same_series] > 0).all(), "an instant is stored twice (or out of order)"


def test_simulate_refuses_a_store_with_data_then_appends_or_replaces(tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert simulate(out, "--start", START)[0] == 0
    _series, ts, value = stored(out)
    assert len(ts) == 72 * 720

    code, output = simulate_as_a_user(out, "--start", START)
    assert code == 2
    assert "already holds data" in output and "--append" in output and "--replace" in output
    np.testing.assert_array_equal(stored(out)[2], value)  # refused: nothing changed

    code, output = simulate(out, "--append")
    assert code == 0, output
    series2, ts2, _ = stored(out)
    assert len(ts2) == 2 * len(ts)
    assert_one_value_per_instant(series2, ts2)
    for sid in np.unique(series2):  # one continuous grid: the append starts one step after
        np.testing.assert_array_equal(np.diff(ts2[series2 == sid]), STEP_MS)

    code, output = simulate(out, "--replace", "--start", "2026-03-01", hours="0.5")
    assert code == 0, output
    _, ts3, _ = stored(out)
    assert len(ts3) == 72 * 360 and ts3.min() >= START_MS + 59 * 86_400_000

    code, output = simulate_as_a_user(out, "--append", "--start", START)
    assert code == 2 and "do not go together" in output


@pytest.mark.slow
def test_a_simulate_killed_midway_is_continued_by_append(tmp_path: Path) -> None:
    out = tmp_path / "d"
    args = ["simulate", "-s", "small", "--days", "60", "--start", START, "--out", str(out)]
    proc = subprocess.Popen(
        [*RACKWATCH, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log_dir = out / "rackwatch-wal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # killed once it has written something
        if (out / "rackwatch.duckdb").exists() and sum(
            f.stat().st_size for f in log_dir.glob("*.wal")
        ) > 1_000_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _series, ts, _ = stored(out)
    assert 0 < len(ts) < 72 * 60 * 17_280, "the kill came too late or too early"
    last = ts.max()

    code, output = simulate(out, "--append", hours="1")
    assert code == 0, output
    series2, ts2, _ = stored(out)
    assert_one_value_per_instant(series2, ts2)
    assert len(ts2) == len(ts) + 72 * 720
    assert ts2[ts2 > last].min() == last + STEP_MS  # continuous: it starts one step after


def run_for(data_dir: Path, seconds: float, *extra: str) -> str:
    """`rackwatch run` for `seconds` once it says it runs (a loaded machine may take seconds to
    start it), then Ctrl-C; its output."""
    args = ["run", "-s", "small", "--speed", "600", "--port", "0", "--data-dir", str(data_dir)]
    out = data_dir.parent / f"{data_dir.name}-run.log"
    with out.open("w") as log:  # the process has its own copy
        proc = subprocess.Popen(
            [*RACKWATCH, *args, *extra],
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
        )
    deadline = time.monotonic() + 60
    while "Press Ctrl-C to stop." not in out.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
        time.sleep(0.1)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return out.read_text()


@pytest.mark.slow
def test_run_restarted_on_its_data_continues_after_it(tmp_path: Path) -> None:
    run_for(tmp_path, 4)
    _series, ts, _ = stored(tmp_path)
    first_end = ts.max()
    assert first_end > time.time() * 1000 + 60_000  # at 600x the twin ran ahead of the clock
    output = run_for(tmp_path, 4)
    assert "continues after it" in output
    assert "retention: last run" in output  # the live panel tells what retention did
    series2, ts2, _ = stored(tmp_path)
    assert_one_value_per_instant(series2, ts2)
    assert ts2.max() > first_end
    assert ts2[ts2 > first_end].min() == first_end + STEP_MS  # no overlap, and no gap


def test_retention_runs_inside_run_and_is_reported(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        twin={"scenario": "small", "speed": 20_000.0},
        store={"raw_retention_days": 0.01, "retention_interval_seconds": 0.3},
    )
    services = app.build_services(settings, start_ms=START_MS)

    async def scenario() -> dict[str, object]:
        stop = asyncio.Event()
        task = asyncio.create_task(app.run_live(services, stop))
        deadline = time.monotonic() + 30
        while services.retention.deleted_total.get("raw", 0) == 0:
            assert time.monotonic() < deadline, "retention never deleted anything"
            await asyncio.sleep(0.1)
        transport = httpx.ASGITransport(app=services.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            status = (await client.get("/api/v1/status")).json()
        stop.set()
        await task
        return status

    try:
        status = asyncio.run(scenario())
        retention = status["store"]["retention"]  # type: ignore[index]
        assert retention["n_runs"] >= 2 and retention["deleted_total"]["raw"] > 0
        assert retention["last"]["deleted"].keys() == {"raw", "1m", "1h"}
        result = services.store.query(Query(0, 2**62, tier="raw"))
        assert int(result.ts.min()) > START_MS  # the runs inside `run` deleted the oldest
        # The twin ran on after the last of them (6,000 simulated s between runs at this
        # speed, more on a loaded machine); one more run, now that nothing moves:
        services.retention.run_once()
        result = services.store.query(Query(0, 2**62, tier="raw"))
        newest = int(result.ts.max())
        # raw keeps 0.01 day (864 s), plus the rollup buckets not yet written (up to an hour)
        assert int(result.ts.min()) >= newest - (864 + 2 * 3600) * 1000
        minutes = services.store.query(Query(START_MS, newest, step_ms=60_000))
        assert int(minutes.ts.min()) == START_MS  # the 1-minute tier keeps what raw lost
    finally:
        services.close()


def test_everything_in_the_data_directory_is_private(tmp_path: Path) -> None:
    out = tmp_path / "d"
    code, output = as_a_user("simulate", "-s", "small", "--hours", "0.2", "--out", str(out))
    assert code == 0, output
    paths = [out, *out.rglob("*")]
    assert len(paths) > 3
    for path in paths:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
