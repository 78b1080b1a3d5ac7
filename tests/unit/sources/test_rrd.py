"""RRD files read as samples: the finest archive kept for each period, no instant twice, no
period missed at an archive's edge, unknown points left out, and the metric names of collectd
and Ganglia files; `rackwatch import rrd` writes them into the store once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rrdtool  # scripts/install --dev builds it against Debian's librrd-dev
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.sources import rrd

START = 1_767_225_600  # 2026-01-01T00:00:00Z
runner = CliRunner()


def make_rrd(path: Path, minutes: int, value: object = None) -> Path:
    """collectd's load.rrd layout at a 60-s step: 60 one-minute points, 100 ten-minute ones
    (AVERAGE) and 60 one-minute MAX; minute i reads i (shortterm) and 2i (midterm)."""
    rrdtool.create(
        str(path),
        "--start",
        str(START - 60),
        "--step",
        "60",
        "DS:shortterm:GAUGE:120:U:U",
        "DS:midterm:GAUGE:120:U:U",
        "RRA:AVERAGE:0.5:1:60",
        "RRA:AVERAGE:0.5:10:100",
        "RRA:MAX:0.5:1:60",
    )
    for i in range(1, minutes + 1):
        reading = f"{i}:{2 * i}" if value is None or i != minutes // 2 else str(value)
        rrdtool.update(str(path), f"{START + 60 * i}:{reading}")
    return path


def minutes(series: rrd.RrdSeries) -> list[int]:
    return [int(t // 1000 - START) // 60 for t in series.ts_ms]


def test_the_finest_archive_of_each_period_and_no_gap_at_its_edge(tmp_path: Path) -> None:
    f = rrd.read(make_rrd(tmp_path / "load.rrd", 199))
    assert (f.step_s, f.last_update_s) == (60, START + 199 * 60)
    short, mid = f.series
    assert (short.ds, mid.ds, short.resolutions_s) == ("shortterm", "midterm", (60, 600))
    # ten-minute points up to 140 (130-140 averaged), then every minute from 141 to 199
    assert minutes(short) == [*range(10, 141, 10), *range(141, 200)]
    assert short.value[minutes(short).index(140)] == pytest.approx(135.5)
    assert short.value[-1] == 199.0 and mid.value[-1] == 398.0
    assert np.all(np.diff(short.ts_ms) > 0)


def test_unknown_and_absurd_points_are_left_out_and_since_and_ds_select(tmp_path: Path) -> None:
    path = make_rrd(tmp_path / "load.rrd", 50, value="U:1e18")
    short, mid = rrd.read(path).series
    assert 25 not in minutes(short) and 25 not in minutes(mid)  # unknown, and beyond 1e15
    assert mid.n_dropped == 1 and short.n_dropped == 0
    (only,) = rrd.read(path, since_s=START + 40 * 60, ds=["midterm"]).series
    assert (only.ds, minutes(only)) == ("midterm", list(range(40, 51)))
    (peak,) = rrd.read(path, consolidation="MAX", ds=["shortterm"]).series
    assert peak.resolutions_s == (60,) and peak.value[-1] == 50.0


@pytest.mark.parametrize(
    ("name", "ds", "metric", "expected"),
    [
        ("load.rrd", ["shortterm", "longterm"], None, ["load_average_1m", "load_average_15m"]),
        ("load_five.rrd", ["sum"], None, ["load_average_5m"]),
        ("cpu-user.rrd", ["value"], None, ["cpu_user"]),
        ("if_octets.rrd", ["rx", "tx"], None, ["if_octets_rx", "if_octets_tx"]),
        ("temp.rrd", ["t"], "inlet_temperature_celsius", ["inlet_temperature_celsius"]),
    ],
)
def test_metric_names(name: str, ds: list[str], metric: str | None, expected: list[str]) -> None:
    assert list(rrd.metric_names(Path(name), ds, metric).values()) == expected


def test_bad_files_and_requests_say_why(tmp_path: Path) -> None:
    path = make_rrd(tmp_path / "load.rrd", 10)
    (tmp_path / "bad.rrd").write_bytes(b"not an rrd")
    for call, said in (
        (lambda: rrd.read(tmp_path / "none.rrd"), "no such file"),
        (lambda: rrd.read(tmp_path / "bad.rrd"), "not a readable RRD file"),
        (lambda: rrd.read(path, ds=["longterm"]), "no data source longterm"),
        (lambda: rrd.read(path, consolidation="MEDIAN"), "consolidation"),
        (lambda: rrd.metric_names(path, ["a", "b"], "m"), "--ds"),
    ):
        with pytest.raises(rrd.RrdError, match=said):
            call()


def test_import_stores_each_point_once(tmp_path: Path) -> None:
    path = make_rrd(tmp_path / "load.rrd", 199)
    data = tmp_path / "data"
    args = ["import", "rrd", str(path), "--entity", "c01/r01/s03", "--data-dir", str(data)]
    first = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "load_average_5m" in first.output
    assert "146 points stored for c01/r01/s03, 0 already held" in first.output
    again = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert "0 points stored for c01/r01/s03, 146 already held" in again.output
    asked = ["--entity", "c01/r01/s03", "--metric", "load_average_1m", "--since", "2m"]
    shown = runner.invoke(cli, ["query", "--data-dir", str(data), *asked, "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip().splitlines()[-1].endswith(",c01/r01/s03,load_average_1m,199.0")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--entity", "c01 r01"], "bad entity path"),
        (["--entity", "s03", "--metric", "Load"], "bad metric name"),
        (["--entity", "s03", "--since", "soon"], "--since"),
        (["--entity", "s03", "--ds", "nope"], "no data source nope"),
    ],
)
def test_import_refusals_exit_2(tmp_path: Path, extra: list[str], said: str) -> None:
    path = make_rrd(tmp_path / "load.rrd", 10)
    done = runner.invoke(
        cli,
        ["import", "rrd", str(path), "--data-dir", str(tmp_path / "data"), *extra],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 2
    assert said in done.output
