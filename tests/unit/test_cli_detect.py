"""`rackwatch detect`: a CSV scored in row order, never looking ahead; refused inputs name
their line, exit with 2 and write nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from rackwatch.cli import cli
from rackwatch.engine.anomaly.csvscore import MAX_LINE_BYTES, detect_csv

runner = CliRunner()
START_S = 1_767_225_600  # 2026-01-01T00:00:00Z
N = 1_200
SPIKE = 900


def signal(n: int = N, seed: int = 0) -> np.ndarray:
    """A slow wave with noise and one spike, at SPIKE (or three quarters in, if shorter)."""
    x = 20.0 + np.sin(np.arange(n) / 50.0) + np.random.default_rng(seed).normal(0, 0.2, n)
    x[min(SPIKE, 3 * n // 4)] += 6.0
    return x


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def epoch_lines(
    x: np.ndarray, step_s: float = 5.0, header: str | None = "timestamp,value"
) -> list[str]:
    rows = [f"{START_S + i * step_s:g},{v:.4f}" for i, v in enumerate(x)]
    return ([header] if header else []) + rows


def detect(*args: object) -> Result:
    return runner.invoke(cli, ["detect", *map(str, args)])


def read_output(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    cols = [line.split(",") for line in lines[1:]]
    return [c[0] for c in cols], [c[1] for c in cols], np.array([float(c[2]) for c in cols])


def test_each_row_gets_a_score_in_order_and_the_spike_stands_out(tmp_path: Path) -> None:
    x = signal()
    source = write(tmp_path / "in.csv", epoch_lines(x))
    done = detect(source, tmp_path / "out.csv")
    assert done.exit_code == 0, done.output
    assert f"{N:,} rows" in done.stderr
    stamps, values, scores = read_output(tmp_path / "out.csv")
    assert stamps == [line.split(",")[0] for line in epoch_lines(x)[1:]]
    assert values == [f"{v:.4f}" for v in x]
    assert np.all((scores >= 0) & (scores <= 1)) and np.all(scores[:40] == 0)
    assert int(np.argmax(scores)) == SPIKE and scores[SPIKE] >= 0.9
    assert np.sort(scores)[-2] < 0.9
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert all(len(line.rsplit(",", 1)[1]) == 8 for line in text[1:])  # 0.123456


def test_no_look_ahead_the_first_rows_score_the_same_without_the_rest(tmp_path: Path) -> None:
    lines = epoch_lines(signal(3_000))
    full = detect(write(tmp_path / "full.csv", lines), tmp_path / "full.out")
    assert full.exit_code == 0, full.output
    whole = (tmp_path / "full.out").read_text().splitlines()
    for k in (1, 41, 1_000, 2_999):
        head = write(tmp_path / f"head{k}.csv", lines[: k + 1])
        assert detect(head, tmp_path / f"head{k}.out").exit_code == 0
        assert (tmp_path / f"head{k}.out").read_text().splitlines() == whole[: k + 1]


def test_no_look_ahead_across_the_reader_s_chunks(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", epoch_lines(signal(3_000)))
    detect_csv(source, tmp_path / "big.out")
    detect_csv(source, tmp_path / "small.out", chunk_rows=97)
    assert (tmp_path / "small.out").read_text() == (tmp_path / "big.out").read_text()


def _iso(seconds: float, style: str) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if style == "z":
        return moment.isoformat().replace("+00:00", "Z")
    if style == "offset":
        return moment.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # naive: UTC


@pytest.mark.parametrize("style", ["epoch ms", "iso z", "iso offset", "iso naive"])
def test_every_timestamp_format_scores_alike(tmp_path: Path, style: str) -> None:
    x = signal(600)
    seconds = START_S + np.cumsum(np.random.default_rng(1).uniform(1.0, 9.0, 600))
    seconds[300:] += 3_600.0  # a gap, irregular intervals throughout
    reference = [f"{s:.3f},{v:.4f}" for s, v in zip(seconds, x, strict=True)]
    if style == "epoch ms":
        lines = [f"{s * 1000:.0f},{v:.4f}" for s, v in zip(seconds, x, strict=True)]
    else:
        lines = [f"{_iso(s, style[4:])},{v:.4f}" for s, v in zip(seconds, x, strict=True)]
    write(tmp_path / "ref.csv", reference)  # no header: detected as data
    write(tmp_path / "in.csv", ["time,cpu", *lines])
    assert detect(tmp_path / "ref.csv", tmp_path / "ref.out").exit_code == 0
    done = detect(tmp_path / "in.csv", tmp_path / "in.out")
    assert done.exit_code == 0, done.output
    _, _, want = read_output(tmp_path / "ref.out")
    stamps, _, got = read_output(tmp_path / "in.out")
    assert stamps == [line.split(",")[0] for line in lines]
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert got.max() >= 0.9


def test_empty_values_are_null_readings_and_quotes_are_accepted(tmp_path: Path) -> None:
    lines = epoch_lines(signal(200))
    for i in range(100, 105):
        lines[i + 1] = lines[i + 1].split(",")[0] + ","
    lines[10] = '"{}", "{}"'.format(*lines[10].split(","))
    done = detect(write(tmp_path / "in.csv", lines), tmp_path / "out.csv")
    assert done.exit_code == 0, done.output
    assert "5 NULL" in done.stderr
    _, values, scores = read_output(tmp_path / "out.csv")
    assert values[100:105] == [""] * 5 and scores[102] >= 0.9 and scores[99] < 0.5


BAD = {
    "empty file": ([], None, "no data rows: the file is empty"),
    "header only": (["timestamp,value"], None, "no data rows after the header"),
    "missing column": (["timestamp,value", "1767225600"], 2, "expected 2 columns"),
    "extra column": (["1767225600,1,2"], 1, "found 3"),
    "not a number": (["timestamp,value", "1767225600,1", "1767225605,abc"], 3, "not a number"),
    "nan": (["1767225600,1", "1767225605,nan"], 2, "not finite"),
    "infinite": (["1767225600,1", "1767225605,-inf"], 2, "not finite"),
    "backwards": (["1767225600,1", "1767225605,2", "1767225601,3"], 3, "before the previous"),
    "bad timestamp": (["time,v", "2026-01-01T00:00:00Z,1", "2026-13-01,2"], 3, "ISO 8601"),
    "mixed formats": (["2026-01-01T00:00:00Z,1", "1767225605,2"], 2, "use one format"),
    "epoch then text": (["1767225600,1", "soon,2"], 2, "not a number"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_csv_is_refused_naming_its_line_and_writes_nothing(tmp_path: Path, name: str) -> None:
    lines, line_no, message = BAD[name]
    source = write(tmp_path / "in.csv", lines)
    kept = write(tmp_path / "kept.csv", ["an earlier output"])
    done = detect(source, tmp_path / "out.csv")
    again = detect(source, kept)
    assert done.exit_code == 2 and again.exit_code == 2, done.output
    where = f"in.csv, line {line_no}:" if line_no else "in.csv:"
    assert where in done.stderr and message in done.stderr, done.stderr
    assert not (tmp_path / "out.csv").exists()
    assert kept.read_text() == "an earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "kept.csv"]  # no temp left


def test_huge_lines_and_binary_files_are_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    huge.write_bytes(b"timestamp,value\n1767225600,1\n" + b"9" * (MAX_LINE_BYTES * 3) + b",1\n")
    done = detect(huge, tmp_path / "out.csv")
    assert done.exit_code == 2 and "line 3: line longer than" in done.stderr, done.output
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"1767225600,1\n\xff\xfe\x00garbage\n")
    done = detect(binary, tmp_path / "out.csv")
    assert done.exit_code == 2 and "line 2: not UTF-8" in done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_missing_input_and_bad_options_exit_with_2(tmp_path: Path) -> None:
    done = detect(tmp_path / "nowhere.csv", tmp_path / "out.csv")
    assert done.exit_code == 2 and "cannot read" in done.stderr
    source = write(tmp_path / "in.csv", epoch_lines(signal(50)))
    assert detect(source, tmp_path / "out.csv", "--epoch-unit", "h").exit_code == 2
    done = detect(source, tmp_path / "no" / "dir" / "out.csv")
    assert done.exit_code == 2 and "error:" in done.stderr


def test_epoch_unit_can_be_forced(tmp_path: Path) -> None:
    lines = [f"{i * 5},{v:.4f}" for i, v in enumerate(signal(300))]  # small epoch seconds
    write(tmp_path / "in.csv", lines)
    assert detect(tmp_path / "in.csv", tmp_path / "s.out").exit_code == 0
    assert detect(tmp_path / "in.csv", tmp_path / "ms.out", "--epoch-unit", "ms").exit_code == 0
    np.testing.assert_allclose(
        read_output(tmp_path / "s.out")[2], read_output(tmp_path / "ms.out")[2], atol=2e-6
    )


def test_progress_is_reported_up_to_the_file_size(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", epoch_lines(signal(5_000)))
    seen: list[tuple[int, int]] = []
    summary = detect_csv(
        source, tmp_path / "out.csv", on_progress=lambda a, b: seen.append((a, b)), chunk_rows=1_000
    )
    assert summary.rows == 5_000 and summary.has_header and summary.anomalies >= 1
    assert len(seen) == 5 and seen[-1][0] == seen[-1][1] == source.stat().st_size
