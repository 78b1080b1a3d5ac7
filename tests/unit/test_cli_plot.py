"""`rackwatch plot`: stored series drawn to a PNG or SVG file, raw or in buckets, and refusals
that write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERVER = "c01/r01/s03"
RANGE = ["--from", "2026-01-01T00:00:00", "--to", "2026-01-01T03:00:00"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plot") / "sim"
    room = ["--scenario", "small", "--hours", "3", "--seed", "2", "--start", "2026-01-01"]
    made = runner.invoke(cli, ["simulate", *room, "--out", str(out)])
    assert made.exit_code == 0, made.output
    return out


def plot(data_dir: Path, *args: str) -> tuple[int, str]:
    done = runner.invoke(cli, ["plot", "--data-dir", str(data_dir), *args], env={"COLUMNS": "200"})
    return done.exit_code, done.output


def test_power_and_load_of_a_machine_in_buckets(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s03.png"
    metrics = ["--metric", "power_watts", "--metric", "cpu_utilization_ratio"]
    code, said = plot(data_dir, "--entity", SERVER, *metrics, *RANGE, "--out", str(out))
    assert code == 0, said
    assert out.read_bytes().startswith(PNG_MAGIC)
    # 3 h of 5-s samples are 2,160 per series: more than a picture wants, so 8-s buckets
    assert "2 series, 2,700 points (8 s buckets)" in said
    assert [p.name for p in tmp_path.iterdir()] == ["s03.png"]  # no temporary file left


def test_raw_samples_as_svg(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "temps.svg"
    metrics = ["--metric", "cpu_temperature_celsius"]
    code, said = plot(
        data_dir, "--entity", "c01/r01/s0[12]", *metrics, *RANGE, "--step", "raw", "--out", str(out)
    )
    assert code == 0, said
    assert "2 series, 4,320 points (raw samples)" in said
    assert b"c01/r01/s02 cpu_temperature_celsius" in out.read_bytes()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--entity", SERVER, "--metric", "power_watts", "--out", "x.jpg"], ".png or .svg"),
        (["--entity", "**", "--metric", "*", "--out", "all.png"], "at most 12"),
        (["--entity", SERVER, "--metric", "no_such_metric", "--out", "x.png"], "no_such_metric"),
        (
            ["--entity", SERVER, "--metric", "power_watts", "--from", "soon", "--out", "x.png"],
            "--from",
        ),
        (
            ["--entity", SERVER, "--metric", "power_watts", "--step", "1ms", "--out", "x.png"],
            "50,000",
        ),
    ],
)
def test_refusals_say_why_and_write_nothing(
    data_dir: Path, tmp_path: Path, args: list[str], said: str
) -> None:
    args = [str(tmp_path / a) if a.endswith((".png", ".jpg")) else a for a in args]
    code, output = plot(data_dir, *RANGE, *args)
    assert code == 2
    assert said in output
    assert list(tmp_path.iterdir()) == []
