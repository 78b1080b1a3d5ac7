"""`rackwatch query`: its table, CSV and JSON, and reading through a running server while
`rackwatch run` holds the store (the same rows as from the store itself)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus
from rackwatch.cli import cli
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.readout import fetch, formats, server_file
from rackwatch.readout.fetch import Answer, SeriesRows
from rackwatch.settings import load_settings
from rackwatch.store.base import ROLLUP_COLUMNS
from rackwatch.tokens import TOKENS_FILE, TokenStore

runner = CliRunner()
NAN_SERIES = ("c01/r01/s01", "inlet_temperature_celsius")
ROLLUP_HEADERS = ("time", "open", "high", "low", "close", "avg", "count")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hour of the small room from `rackwatch simulate`, plus one NULL (NaN) reading of
    NAN_SERIES 5 s after the rest (its own 1-minute bucket, all missing)."""
    out = tmp_path_factory.mktemp("query") / "sim"
    made = runner.invoke(
        cli,
        [
            "simulate",
            "--scenario",
            "small",
            "--hours",
            "1",
            "--seed",
            "3",
            "--start",
            "2026-01-01",
            "--out",
            str(out),
        ],
    )
    assert made.exit_code == 0, made.output
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=out), registry)) as store:
        newest = int(store.latest().ts.max())
        series = registry.get(*NAN_SERIES)
        store.write(Batch.of([newest + 5000], [series], [np.nan]))
        store.flush()
    return out


@pytest.fixture
def data_dir(simulated: Path, tmp_path: Path) -> Path:
    """A copy of the simulated store, for a test that holds it open or adds files."""
    copy = tmp_path / "data"
    shutil.copytree(simulated, copy)
    return copy


def query(data: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(
        cli, ["query", "--data-dir", str(data), *args], env={"COLUMNS": "80", **(env or {})}
    )


# --------------------------------------------------------------------------- formats


def test_table_at_80_columns_shows_whole_names_and_every_header(simulated: Path) -> None:
    shown = query(
        simulated, "--metric", "crac_supply_temperature_celsius", "--since", "10m", "--step", "1m"
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("tier 1m (buckets of 1m), 1 series, 10 rows")
    assert "room/crac1 crac_supply_temperature_celsius (celsius)" in lines
    header = next(line for line in lines if line.startswith("time "))
    assert header.split() == [*ROLLUP_HEADERS, "missing"]
    rows = lines[lines.index(header) + 1 :]
    assert len(rows) == 10 and all(row.startswith("2026-01-01 00:") for row in rows)
    assert all(len(line) <= 80 for line in lines), lines
    assert "\x1b[" not in shown.stdout


def test_table_of_raw_rows_has_one_section_per_series(simulated: Path) -> None:
    shown = query(
        simulated, "--entity", "c01/r01/s0[12]", "--metric", "power_watts", "--since", "1m"
    )
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert out.startswith("tier raw (raw samples), 2 series, 24 rows")
    assert "c01/r01/s01 power_watts (watts)" in out and "c01/r01/s02 power_watts (watts)" in out
    assert out.count("\ntime                 value\n") == 2
    raw = query(simulated, "--entity", "c01/r01/s01", "--metric", "power_watts", "--step", "raw")
    assert raw.exit_code == 0 and "time                 value" in raw.stdout, raw.output


def test_table_drops_missing_then_narrows_where_a_row_would_not_fit() -> None:
    big = np.array([123456789.5, 1e8 + 0.25])
    rows = SeriesRows(
        "a/very/long/entity/path/that/does/not/fit/in/one/column/of/a/table",
        "some_counter_metric_with_a_long_name_total",
        None,
        np.array([0, 60_000], np.int64),
        {
            **dict.fromkeys(ROLLUP_COLUMNS[:5], big),
            "count": np.array([12, 12]),
            "missing": np.array([0, 0]),
        },
    )
    answer = Answer("1m", 60_000, 0, 120_000, (rows,))
    out = io.StringIO()
    formats.write_table(answer, out, width=80)
    text = out.getvalue()
    assert f"{rows.entity} {rows.metric}\n" in text
    header = next(line for line in text.splitlines() if line.startswith("time "))
    assert header.split() == list(ROLLUP_HEADERS)  # no room for `missing`
    assert "123456790" in text  # 123456789.5, whole digits, no exponent
    assert all(
        len(line) <= 80 for line in text.splitlines() if line != f"{rows.entity} {rows.metric}"
    )


def test_csv_has_a_header_the_timestamp_first_and_parses(simulated: Path) -> None:
    shown = query(simulated, "--metric", "fan_rpm", "--since", "5m", "--step", "1m", "-f", "csv")
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == ""
    table = list(csv.reader(io.StringIO(shown.stdout)))
    assert table[0] == ["timestamp", "ts_ms", "entity", "metric", *ROLLUP_COLUMNS]
    body = table[1:]
    assert len(body) == 10 * 5  # ten fans, five minutes
    for timestamp, ts_ms, entity, metric, *values in body:
        assert timestamp.endswith("Z") and timestamp.startswith("2026-01-01T00:5")
        assert timestamp == formats.iso_times(np.array([int(ts_ms)]))[0]
        assert entity.endswith(("/fan1", "/fan2")) and metric == "fan_rpm"
        assert float(values[0]) > 0 and int(values[5]) == 12


def test_json_is_one_object_with_rows_timestamp_first_and_nan_as_null(simulated: Path) -> None:
    shown = query(simulated, "--entity", "c01/r01/s01", "--since", "10s", "-f", "json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["tier"] == "raw" and body["bucket_ms"] == 0 and body["columns"] == ["value"]
    assert body["units"]["cpu_temperature_celsius"] == "celsius"
    rows = body["rows"]
    assert all(next(iter(row)) == "timestamp" for row in rows)
    nulls = [row for row in rows if row["value"] is None]
    assert [(r["entity"], r["metric"]) for r in nulls] == [NAN_SERIES]
    assert any(isinstance(row["value"], float) for row in rows)
    buckets = json.loads(
        query(
            simulated,
            "--entity",
            NAN_SERIES[0],
            "--metric",
            NAN_SERIES[1],
            "--since",
            "1m",
            "--step",
            "1m",
            "-f",
            "json",
        ).stdout
    )
    last = buckets["rows"][-1]
    assert last["avg"] is None and last["count"] == 0 and last["missing"] == 1


def test_csv_writes_nan_as_an_empty_field(simulated: Path) -> None:
    shown = query(
        simulated,
        "--entity",
        NAN_SERIES[0],
        "--metric",
        NAN_SERIES[1],
        "--since",
        "10s",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert rows[-1]["value"] == "" and rows[0]["value"] != ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "nope"], "unknown metric 'nope'; known metrics: airflow_cfm, "),
        (["--since", "soon"], "is not a duration"),
        (["--step", "0"], "must be between"),
        (["--entity", "c01//s01"], "bad entity pattern"),
    ],
)
def test_bad_values_are_refused_with_a_message(
    simulated: Path, args: list[str], message: str
) -> None:
    shown = runner.invoke(
        cli, ["query", "--data-dir", str(simulated), *args], env={"COLUMNS": "300"}
    )
    assert shown.exit_code == 2 and message in shown.output, shown.output


# --------------------------------------------------------------------------- through a server


@contextlib.contextmanager
def served(api: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread with its own loop."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with serving(api, "127.0.0.1", 0) as url:
                box["url"] = url
                ready.set()
                await box["stop"].wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20), "the test server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


@contextlib.contextmanager
def running_server(data: Path, **options: Any) -> Iterator[str]:
    """What `rackwatch run` does for `query`: hold the store, serve the API over it (the live
    state holding each series' newest sample), and record the server in the data directory."""
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=data), registry)) as store:
        latest = store.latest()
        live = LiveState(len(registry))
        live.update(Batch.of(latest.ts, latest.series_ids, latest.value))
        ctx = ApiContext(store=store, registry=registry, live=live, bus=MemoryBus(), **options)
        with served(create_app(ctx)) as url:
            server_file.record(data, url)
            try:
                yield url
            finally:
                server_file.discard(data)


CASES = [
    ("--since", "1h"),
    ("--since", "1h", "--step", "raw"),
    ("--since", "1h", "--step", "1m"),
    ("--since", "1h", "--step", "5m"),
    ("--since", "50m", "--step", "90s"),
]


def test_the_server_gives_the_same_rows_as_the_store(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With answers capped at 500 rows, so that every range is fetched in windows."""
    monkeypatch.setattr(fetch, "MAX_ROWS", 500)
    windows: list[int] = []
    split = fetch.split_range

    def counted(*args: Any, **kwargs: Any) -> list[tuple[int, int]]:
        windows.append(len(cuts := split(*args, **kwargs)))
        return cuts

    monkeypatch.setattr(fetch, "split_range", counted)
    wanted = [
        (*case, "--entity", entity, "--format", fmt)
        for case in CASES
        for entity, fmt in (("c01/**/fan*", "csv"), ("c01/r01/s01", "json"))
    ] + [("--metric", "fan_rpm", "--since", "15m", "--step", "5m")]  # the table
    with running_server(data_dir, max_points=500) as url:
        remote = [query(data_dir, *args) for args in wanted]
    assert not (data_dir / server_file.SERVER_FILE).exists()
    assert len(windows) == len(wanted) and sum(n > 1 for n in windows) >= 5
    local = [query(data_dir, *args) for args in wanted]
    for args, there, here in zip(wanted, remote, local, strict=True):
        assert there.exit_code == 0 and here.exit_code == 0, (args, there.output, here.output)
        assert f"read through the running server at {url}" in there.stderr
        assert "running server" not in here.stderr
        assert there.stdout == here.stdout, args
        assert len(here.stdout.splitlines()) > 5, args


def test_a_wrong_metric_reads_the_same_through_the_server(data_dir: Path) -> None:
    with running_server(data_dir):
        remote = query(data_dir, "--metric", "cpu_temperature_celsius", "--metric", "nope")
    local = query(data_dir, "--metric", "cpu_temperature_celsius", "--metric", "nope")
    assert remote.exit_code == local.exit_code == 2
    assert "unknown metric 'nope'" in remote.output
    assert remote.output == local.output


def test_a_server_that_wants_a_token_gets_one(data_dir: Path) -> None:
    tokens = TokenStore(data_dir / TOKENS_FILE)
    read_token, _ = tokens.create("read")
    control_token, _ = tokens.create("control")
    args = ("--entity", "room", "--since", "5m", "--step", "1m", "--format", "csv")
    expected = query(data_dir, *args).stdout
    with running_server(data_dir, tokens=tokens, open_reads_on_loopback=False):
        refused = query(data_dir, *args)
        wrong = query(data_dir, *args, "--token", "rw_not-a-token")
        given = query(data_dir, *args, "--token", read_token)
        from_env = query(data_dir, *args, env={"RACKWATCH_TOKEN": read_token})
        (data_dir / fetch.CONTROL_TOKEN_FILE).write_text(control_token + "\n")
        from_file = query(data_dir, *args)
    assert refused.exit_code == 2 and "pass --token or set RACKWATCH_TOKEN" in refused.stderr
    assert wrong.exit_code == 2 and "refused the token" in wrong.stderr
    for shown in (given, from_env, from_file):
        assert shown.exit_code == 0, shown.output
        assert shown.stdout == expected


def test_a_stale_server_file_is_ignored(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"url": "http://127.0.0.1:9/", "pid": dead.pid, "version": "0.1.0"}
    (data_dir / server_file.SERVER_FILE).write_text(json.dumps(stale))
    assert server_file.find(data_dir) is None
    shown = query(data_dir, "--entity", "room", "--since", "1m")  # the store is free: read it
    assert shown.exit_code == 0 and "tier raw" in shown.stdout, shown.output
    monkeypatch.setattr(fetch, "LOCK_WAIT_S", 0.3)
    with contextlib.closing(app.open_store(load_settings(data_dir=data_dir), SeriesRegistry())):
        held = query(data_dir, "--entity", "room", "--since", "1m")
    assert held.exit_code == 2
    assert "in use by another process" in held.stderr and "server.json" in held.stderr
    assert "does not answer" not in held.stderr  # the dead server's URL was never tried


def test_a_live_server_that_does_not_answer_is_reported(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "LOCK_WAIT_S", 0.3)
    silent = {"url": "http://127.0.0.1:9/", "pid": os.getpid()}
    (data_dir / server_file.SERVER_FILE).write_text(json.dumps(silent))
    with contextlib.closing(app.open_store(load_settings(data_dir=data_dir), SeriesRegistry())):
        shown = query(data_dir, "--since", "1m")
    assert shown.exit_code == 2 and "does not answer" in shown.stderr, shown.output


def test_server_file_is_private_and_removed_only_by_its_writer(tmp_path: Path) -> None:
    path = server_file.record(tmp_path, "http://[::]:8123/")
    assert path.stat().st_mode & 0o777 == 0o600
    found = server_file.find(tmp_path)
    assert found is not None and found.url == "http://[::1]:8123/" and found.pid == os.getpid()
    other = {**json.loads(path.read_text()), "pid": os.getppid()}
    path.write_text(json.dumps(other))
    server_file.discard(tmp_path)  # another process' record: left alone
    assert path.exists()
    path.write_text("{not json")
    assert server_file.find(tmp_path) is None


# --------------------------------------------------------------------------- end to end


def rackwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rackwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.slow
def test_query_reads_through_a_live_run_then_from_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "COLUMNS": "80"}
    with (tmp_path / "run.out").open("w") as log:
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rackwatch",
                "run",
                "--scenario",
                "small",
                "--speed",
                "60",
                "--port",
                "0",
                "--data-dir",
                str(data),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 30
        while not (data / server_file.SERVER_FILE).exists():
            assert run.poll() is None, (tmp_path / "run.out").read_text()
            assert time.monotonic() < deadline, "rackwatch run did not record its server"
            time.sleep(0.1)
        record = json.loads((data / server_file.SERVER_FILE).read_text())
        assert record["pid"] == run.pid and record["url"].startswith("http://127.0.0.1:")
        assert (data / server_file.SERVER_FILE).stat().st_mode & 0o777 == 0o600
        args = ["query", "--data-dir", str(data), "--entity", "c01/r01/**", "--since", "1h"]
        while True:  # until the first samples are in
            first = rackwatch(*args, "--metric", "power_watts", "-f", "csv", env=env)
            if first.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert first.returncode == 0, first.stderr
        table = rackwatch(*args, "--metric", "cpu_temperature_celsius", "--step", "1m", env=env)
        csv_out = rackwatch(*args, "--metric", "power_watts", "-f", "csv", env=env)
        json_out = rackwatch(*args, "--metric", "fan_rpm", "-f", "json", env=env)
        for shown in (table, csv_out, json_out):
            assert shown.returncode == 0, shown.stderr
            assert f"read through the running server at {record['url']}" in shown.stderr
        assert "c01/r01/s05 cpu_temperature_celsius (celsius)" in table.stdout
        assert "time                 open" in table.stdout
        rows = list(csv.DictReader(io.StringIO(csv_out.stdout)))
        assert rows and {r["entity"] for r in rows} == {f"c01/r01/s0{i}" for i in range(1, 6)}
        assert all(float(r["value"]) > 0 for r in rows)
        body = json.loads(json_out.stdout)
        assert body["tier"] == "raw" and body["rows"]
        assert {r["metric"] for r in body["rows"]} == {"fan_rpm"}
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 0, (tmp_path / "run.out").read_text()
    assert not (data / server_file.SERVER_FILE).exists()
    after = rackwatch(*args, "--metric", "power_watts", "-f", "json", env=env)
    assert after.returncode == 0, after.stderr
    assert "running server" not in after.stderr
    assert len(json.loads(after.stdout)["rows"]) >= len(rows)
