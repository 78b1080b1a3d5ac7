"""`rackwatch export`: JSON lines per UTC day (gzip, rotation by size), Parquet, buckets,
refusals that write nothing, and reading through a running server."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_cli_query import running_server  # the `rackwatch run` stand-in of the query tests
from typer.testing import CliRunner, Result

from rackwatch import app
from rackwatch.cli import cli
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.readout import export as exporting
from rackwatch.readout import fetch
from rackwatch.settings import load_settings
from rackwatch.store.base import Query, Store

runner = CliRunner()
SERVER = "c01/r01/s01"
NAN_SERIES = (SERVER, "inlet_temperature_celsius")
DAY1, DAY2 = "monitoring_20260101", "monitoring_20260102"
JAN_2 = 1_767_312_000_000
"""2026-01-02T00:00:00Z in epoch ms: where the second day's file starts."""
Row = tuple[int, str, str, tuple[Any, ...]]
"""(ts_ms, entity, metric, the columns after the metric), NaN as None."""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hours of the small room across midnight (2026-01-01 23:00 to 01:00 UTC), plus one
    NULL (NaN) reading of NAN_SERIES 5 s after the rest."""
    out = tmp_path_factory.mktemp("export") / "sim"
    room = ["--scenario", "small", "--hours", "2", "--seed", "3", "--start", "2026-01-01T23:00:00"]
    made = runner.invoke(cli, ["simulate", *room, "--out", str(out)])
    assert made.exit_code == 0, made.output
    with open_store(out) as (store, registry):
        newest = int(store.latest().ts.max())
        store.write(Batch.of([newest + 5000], [registry.get(*NAN_SERIES)], [np.nan]))
        store.flush()
    return out


@contextlib.contextmanager
def open_store(data: Path) -> Iterator[tuple[Store, SeriesRegistry]]:
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(load_settings(data_dir=data), registry)) as store:
        yield store, registry


def export(data: Path, out: Path, *args: str) -> Result:
    return runner.invoke(
        cli,
        ["export", "--data-dir", str(data), "--out", str(out), *args],
        env={"COLUMNS": "200"},
    )


def stored(
    data: Path, start_ms: int, end_ms: int, entity: str, step_ms: int | None = None
) -> list[Row]:
    """What the store itself holds: the rows of `Query(start_ms, end_ms, entity, step_ms)`,
    sorted."""
    with open_store(data) as (store, _):
        result = store.query(Query(start_ms, end_ms, entity=entity, step_ms=step_ms))
    rows: list[Row] = []
    for key, cols in result:
        names = [n for n in cols if n != "ts"]
        for i, ts in enumerate(cols["ts"].tolist()):
            values = tuple(_json_value(cols[n][i]) for n in names)
            rows.append((ts, key.entity, key.metric, values))
    return sorted(rows)


def _json_value(value: Any) -> Any:
    number = value.item()
    return None if isinstance(number, float) and np.isnan(number) else number


def read_lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="ascii") as file:
        return [json.loads(line) for line in file]


def as_rows(objects: list[dict[str, Any]]) -> list[Row]:
    """Exported objects as `stored` gives rows, sorted."""
    return sorted(
        (o["ts_ms"], o["entity"], o["metric"], tuple(list(o.values())[4:])) for o in objects
    )


def parts(out: Path, day: str) -> list[Path]:
    """A day's files in part order: the first (no number), then .1, .2…"""
    found = [p for p in out.iterdir() if p.name.startswith(day + ".")]

    def number(path: Path) -> int:
        match = re.fullmatch(rf"{day}(?:\.([0-9]+))?\.jsonl(?:\.gz)?", path.name)
        assert match is not None, path.name
        return int(match.group(1) or 0)

    return sorted(found, key=number)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Each file's bytes by its path under `folder`."""
    files = sorted(folder.rglob("*"))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files if p.is_file()}


# --------------------------------------------------------------------------- JSON lines


def test_jsonl_writes_a_file_per_utc_day_with_the_stores_rows_in_time_order(
    simulated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shown = export(simulated, out, "--from", "2026-01-01", "--entity", SERVER)
    assert shown.exit_code == 0, shown.output
    assert sorted(p.name for p in out.iterdir()) == [f"{DAY1}.jsonl", f"{DAY2}.jsonl"]
    first, second = read_lines(out / f"{DAY1}.jsonl"), read_lines(out / f"{DAY2}.jsonl")
    assert all(o["ts_ms"] < JAN_2 for o in first) and all(o["ts_ms"] >= JAN_2 for o in second)
    for objects in (first, second):
        ts = [o["ts_ms"] for o in objects]
        assert ts == sorted(ts)
        assert list(objects[0]) == ["timestamp", "ts_ms", "entity", "metric", "value"]
    assert first[0]["timestamp"] == "2026-01-01T23:00:00.000Z"
    # Without --to the range ends at the newest sample, included: the NaN reading, as null.
    assert (second[-1]["entity"], second[-1]["metric"], second[-1]["value"]) == (*NAN_SERIES, None)
    whole = stored(simulated, 0, second[-1]["ts_ms"] + 1, SERVER)
    assert as_rows(first + second) == whole and len(whole) > 5000
    assert "rows" in shown.stdout and f"{len(whole):,}" in shown.stdout


def test_to_is_excluded_and_a_day_outside_the_range_gets_no_file(
    simulated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shown = export(
        simulated,
        out,
        *("--from", "2026-01-01T23:30:00Z", "--to", str(JAN_2), "--entity", "room"),
    )
    assert shown.exit_code == 0, shown.output
    assert [p.name for p in out.iterdir()] == [f"{DAY1}.jsonl"]
    rows = as_rows(read_lines(out / f"{DAY1}.jsonl"))
    assert rows == stored(simulated, JAN_2 - 1_800_000, JAN_2, "room")
    assert rows[-1][0] < JAN_2


def test_gzip_files_read_back_as_the_plain_lines(simulated: Path, tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    args = ("--from", "2026-01-01", "--entity", "c01/r01/*")
    assert export(simulated, plain, *args).exit_code == 0
    shown = export(simulated, packed, *args, "--gzip")
    assert shown.exit_code == 0, shown.output
    assert sorted(p.name for p in packed.iterdir()) == [f"{DAY1}.jsonl.gz", f"{DAY2}.jsonl.gz"]
    for day in (DAY1, DAY2):
        text = gzip.decompress((packed / f"{day}.jsonl.gz").read_bytes())
        assert text == (plain / f"{day}.jsonl").read_bytes()
        assert (packed / f"{day}.jsonl.gz").stat().st_size < len(text) / 5


@pytest.mark.parametrize(
    ("use_gzip", "limit", "limit_bytes"), [(False, "64K", 65536), (True, "4K", 4096)]
)
def test_max_bytes_rotates_a_day_into_parts_each_under_the_limit(
    simulated: Path, tmp_path: Path, use_gzip: bool, limit: str, limit_bytes: int
) -> None:
    whole, rotated = tmp_path / "whole", tmp_path / "rotated"
    args = ("--from", "2026-01-01", "--entity", SERVER, *(["--gzip"] if use_gzip else []))
    assert export(simulated, whole, *args).exit_code == 0
    shown = export(simulated, rotated, *args, "--max-bytes", limit)
    assert shown.exit_code == 0, shown.output
    ext = ".jsonl.gz" if use_gzip else ".jsonl"
    for day in (DAY1, DAY2):
        files = parts(rotated, day)
        assert len(files) >= 3
        assert [f.name for f in files[:3]] == [f"{day}{ext}", f"{day}.1{ext}", f"{day}.2{ext}"]
        sizes = [f.stat().st_size for f in files]
        assert max(sizes) <= limit_bytes and min(sizes[:-1]) > limit_bytes // 2, sizes
        lines = [line for f in files for line in read_lines(f)]
        assert lines == read_lines(whole / f"{day}{ext}")


# --------------------------------------------------------------------------- buckets, Parquet


def test_step_1m_writes_minute_buckets(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shown = export(simulated, out, "--from", "2026-01-01", "--entity", SERVER, "--step", "1m")
    assert shown.exit_code == 0, shown.output
    assert "buckets of 1m" in shown.stdout
    objects = read_lines(out / f"{DAY1}.jsonl") + read_lines(out / f"{DAY2}.jsonl")
    assert list(objects[0])[4:] == ["open", "high", "low", "close", "avg", "count", "missing"]
    assert all(o["ts_ms"] % 60_000 == 0 for o in objects)
    assert objects[0]["count"] == 12  # a sample every 5 s
    last = objects[-1]  # the NaN reading's own minute: no value, one missing
    assert (last["metric"], last["avg"], last["count"], last["missing"]) == (
        NAN_SERIES[1],
        None,
        0,
        1,
    )
    assert as_rows(objects) == stored(simulated, 0, last["ts_ms"] + 60_000, SERVER, 60_000)


def test_parquet_writes_a_hive_partition_per_day_and_metric_that_duckdb_reads(
    simulated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shown = export(simulated, out, "--from", "2026-01-01", "--entity", SERVER, "-f", "parquet")
    assert shown.exit_code == 0, shown.output
    days = sorted(p.name for p in (out / "tier=raw").iterdir())
    assert days == ["date=2026-01-01", "date=2026-01-02"]
    expected = [(ts, e, m, v[0]) for ts, e, m, v in stored(simulated, 0, 2**62, SERVER)]
    metrics = sorted({m for _, _, m, _ in expected})
    first_day = out / "tier=raw" / "date=2026-01-01"
    assert sorted(p.name for p in first_day.iterdir()) == [f"metric={m}" for m in metrics]
    found = duckdb.execute(
        f"SELECT ts, entity, metric, value FROM read_parquet('{out}/**/*.parquet', "
        "hive_partitioning = true) ORDER BY ts, entity, metric"
    ).fetchall()
    assert found == expected  # the NaN reading comes back as NULL, not NaN
    nan_file = first_day.parent / "date=2026-01-02" / f"metric={NAN_SERIES[1]}" / "part-0.parquet"
    table = pq.read_table(nan_file)  # the file alone: no partition columns inside
    assert table.column_names == ["series", "entity", "ts", "value"]
    assert table.column("value").null_count == 1  # the NaN reading is a Parquet null
    assert table.num_rows == sum(ts >= JAN_2 and m == NAN_SERIES[1] for ts, _, m, _ in expected)

    minutes = tmp_path / "minutes"
    shown = export(simulated, minutes, "--from", "2026-01-02", "--step", "1m", "-f", "parquet")
    assert shown.exit_code == 0, shown.output
    buckets = pq.read_table(minutes / "tier=1m" / "date=2026-01-02")  # a day, every metric
    assert "avg" in buckets.column_names and buckets.num_rows > 0
    assert all(ts % 60_000 == 0 for ts in buckets.column("ts").to_pylist())


def test_parquet_again_with_force_replaces_the_day_without_doubling_rows(
    simulated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("--from", "2026-01-01", "--entity", SERVER, "-f", "parquet")
    assert export(simulated, out, *args).exit_code == 0
    before = snapshot(out)
    refused = export(simulated, out, *args)
    assert refused.exit_code == 2 and "already exists" in refused.output, refused.output
    assert snapshot(out) == before
    again = export(simulated, out, *args, "--force")
    assert again.exit_code == 0, again.output
    assert sorted(snapshot(out)) == sorted(before)
    n_rows = duckdb.execute(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchall()
    assert n_rows == [(len(stored(simulated, 0, 2**62, SERVER)),)]


# --------------------------------------------------------------------------- never replaced


def test_existing_files_are_kept_without_force_and_replaced_with_it(
    simulated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("--from", "2026-01-01", "--entity", SERVER)
    assert export(simulated, out, *args, "--max-bytes", "64K").exit_code == 0
    before = snapshot(out)
    assert len(before) > 2
    refused = export(simulated, out, *args)
    assert refused.exit_code == 2, refused.output
    assert "already exists" in refused.output and "--force" in refused.output
    assert snapshot(out) == before
    replaced = export(simulated, out, *args, "--gzip", "--force")
    assert replaced.exit_code == 0, replaced.output
    # The day's earlier parts went: one gzip file per day is all that is left.
    assert sorted(snapshot(out)) == [f"{DAY1}.jsonl.gz", f"{DAY2}.jsonl.gz"]


def test_an_export_that_fails_midway_leaves_whole_days_and_no_temporary_file(
    simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = exporting.jsonl_lines

    def second_day_fails(result: Any) -> list[str]:
        if len(result) and int(result.ts.min()) >= JAN_2:
            raise OSError("No space left on device")
        return lines(result)

    monkeypatch.setattr(exporting, "jsonl_lines", second_day_fails)
    out = tmp_path / "out"
    shown = export(simulated, out, "--from", "2026-01-01", "--entity", SERVER)
    assert shown.exit_code == 2 and "No space left on device" in shown.output
    assert [p.name for p in out.iterdir()] == [f"{DAY1}.jsonl"]  # no .tmp file either


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "from 'yesterday' is not a time"),
        (["--from", "2026-01-02", "--to", "2026-01-01"], "must be before --to"),
        (["--from", "2026-01-01", "--max-bytes", "ten"], "--max-bytes 'ten' is not a size"),
        (["--from", "2026-01-01", "--max-bytes", "100"], "is less than 1024 bytes"),
        (["--from", "2026-01-01", "--metric", "nope"], "unknown metric 'nope'"),
        (["--from", "2026-01-01", "--entity", "nowhere/*"], "no series with samples match"),
        (["--from", "2027-01-01"], "nothing to export: the newest matching sample is at"),
        (["--from", "2025-06-01", "--to", "2025-06-02"], "nothing to export"),
        (["--from", "2026-01-01", "-f", "xml"], "unknown format 'xml'"),
        (["--from", "2026-01-01", "-f", "parquet", "--gzip"], "drop --gzip"),
        (["--from", "2026-01-01", "-f", "parquet", "--step", "5m"], "Parquet files hold a tier"),
        (["--from", "2026-01-01", "--step", "0"], "must be between"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(
    simulated: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    shown = export(simulated, out, *args)
    assert shown.exit_code == 2, shown.output
    assert message in " ".join(shown.output.replace("│", " ").split()), shown.output
    assert not out.exists()


def test_a_missing_store_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    shown = export(tmp_path / "nowhere", out, "--from", "2026-01-01")
    assert shown.exit_code == 2 and "no store in" in shown.output, shown.output
    assert not out.exists() and not (tmp_path / "nowhere").exists()


def test_an_out_that_is_a_file_is_refused(simulated: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    shown = export(simulated, taken, "--from", "2026-01-01")
    assert shown.exit_code == 2 and "is not a directory" in shown.output, shown.output


# --------------------------------------------------------------------------- through a server


def test_through_a_running_server_the_files_are_the_same(
    simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With answers capped at 500 rows, so that every day is fetched in windows."""
    data = tmp_path / "data"
    shutil.copytree(simulated, data)
    monkeypatch.setattr(fetch, "MAX_ROWS", 500)
    cases = {
        "raw": ("--entity", SERVER),
        "buckets": ("--entity", "c01/**/fan*", "--step", "5m", "--gzip"),
        "parquet": ("--entity", SERVER, "--step", "1m", "-f", "parquet"),
    }
    with running_server(data, max_points=500) as url:
        remote = {
            name: export(data, tmp_path / f"remote-{name}", "--from", "2026-01-01", *args)
            for name, args in cases.items()
        }
    for name, args in cases.items():
        shown = remote[name]
        assert shown.exit_code == 0, shown.output
        assert f"read through the running server at {url}" in shown.stderr
        here = export(data, tmp_path / f"local-{name}", "--from", "2026-01-01", *args)
        assert here.exit_code == 0 and "running server" not in here.stderr, here.output
        there, local = snapshot(tmp_path / f"remote-{name}"), snapshot(tmp_path / f"local-{name}")
        assert sorted(there) == sorted(local) and there, name
        if name != "parquet":  # Parquet's `series` column numbers the series of the answer
            assert there == local, name
