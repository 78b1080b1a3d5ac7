"""An `Answer` printed as a table for people, or as CSV or JSON for programs.

- table: a summary line, then one section per series: a heading line (entity, metric, unit;
  never cut) and its rows under `time` (UTC) and the value columns, sized to the terminal's
  width (rollups drop `missing`, then narrow the gaps, where the row would not fit).
- csv: a header line `timestamp,ts_ms,entity,metric,<columns>`, then one line per row;
  `timestamp` is ISO 8601 UTC with `Z`; a NaN reading is an empty field.
- json: `{"tier", "bucket_ms", "from_ms", "to_ms", "columns", "units": {metric: unit},
  "rows": [{"timestamp", "ts_ms", "entity", "metric", <columns>...}]}`, NaN as null.

The columns are `value` for raw rows, or `open, high, low, close, avg, count, missing` for
buckets (`timestamp` is the bucket's start).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Sequence
from itertools import repeat
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from rackwatch.api.encode import finite_list
from rackwatch.readout.fetch import Answer, SeriesRows

FORMATS = ("table", "csv", "json")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DURATION_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def write(answer: Answer, out: TextIO, output_format: str, width: int = 80) -> None:
    if output_format == "table":
        write_table(answer, out, width)
    elif output_format == "csv":
        write_csv(answer, out)
    elif output_format == "json":
        write_json(answer, out)
    else:
        raise ValueError(f"unknown format {output_format!r}: use one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- machine formats


def iso_times(ts: npt.NDArray[np.int64]) -> list[str]:
    """Epoch ms as ISO 8601 UTC with `Z`, to the millisecond.

    >>> iso_times(np.array([1767225600123]))
    ['2026-01-01T00:00:00.123Z']
    """
    text = np.datetime_as_string(ts.astype("datetime64[ms]"), unit="ms")
    return [t + "Z" for t in text.tolist()]


def _rows(series: SeriesRows, columns: Sequence[str]) -> Any:
    values = [finite_list(series.columns[name]) for name in columns]
    return zip(
        iso_times(series.ts),
        series.ts.tolist(),
        repeat(series.entity),
        repeat(series.metric),
        *values,
        strict=False,
    )


def write_csv(answer: Answer, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "ts_ms", "entity", "metric", *answer.columns])
    for series in answer.series:
        writer.writerows(_rows(series, answer.columns))


def write_json(answer: Answer, out: TextIO) -> None:
    head = {
        "tier": answer.tier,
        "bucket_ms": answer.bucket_ms,
        "from_ms": answer.from_ms,
        "to_ms": answer.to_ms,
        "columns": list(answer.columns),
        "units": {s.metric: s.unit for s in answer.series if s.unit is not None},
    }
    keys = ("timestamp", "ts_ms", "entity", "metric", *answer.columns)
    out.write(json.dumps(head)[:-1] + ', "rows": [')
    separator = "\n"
    for series in answer.series:
        for row in _rows(series, answer.columns):
            out.write(separator + json.dumps(dict(zip(keys, row, strict=True)), allow_nan=False))
            separator = ",\n"
    out.write("\n]}\n")


# --------------------------------------------------------------------------- table


def duration_text(ms: int) -> str:
    """A bucket width in the largest unit that divides it.

    >>> duration_text(60_000), duration_text(5000), duration_text(90_000), duration_text(250)
    ('1m', '5s', '90s', '250ms')
    """
    for unit, size in _DURATION_UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def number_text(value: float) -> str:
    """A reading for the table: whole numbers as such, others to 6 significant digits, no
    exponent for large values; NaN (a NULL reading) as `-`.

    >>> [number_text(v) for v in (65.3, 65.341666, 12.0, 123456789.0, 0.1123, float("nan"))]
    ['65.3', '65.3417', '12', '123456789', '0.1123', '-']
    """
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.6g}"
    if "e" in text and abs(value) >= 1:
        return f"{value:.0f}"
    return text


def utc_text(ms: int, with_ms: bool = False) -> str:
    """Epoch ms as `YYYY-MM-DD HH:MM:SS` (UTC), with `.mmm` when asked.

    >>> utc_text(1767225600123), utc_text(1767225600123, with_ms=True)
    ('2026-01-01 00:00:00', '2026-01-01 00:00:00.123')
    """
    when = _EPOCH + dt.timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%d %H:%M:%S") + (f".{ms % 1000:03d}" if with_ms else "")


def write_table(answer: Answer, out: TextIO, width: int = 80) -> None:
    kind = "raw samples"
    if answer.bucket_ms > 0:
        kind = f"buckets of {duration_text(answer.bucket_ms)}"
    out.write(
        f"tier {answer.tier} ({kind}), {len(answer.series)} series, {answer.n_rows:,} rows\n"
        f"times in UTC, from {utc_text(answer.from_ms, answer.from_ms % 1000 != 0)} "
        f"to {utc_text(answer.to_ms - 1, (answer.to_ms - 1) % 1000 != 0)}\n"
    )
    for series in answer.series:
        heading = f"{series.entity} {series.metric}"
        if series.unit is not None:
            heading += f" ({series.unit})"
        out.write(f"\n{heading}\n")
        if len(series) == 0:
            out.write("(no rows in this range)\n")
            continue
        out.write("".join(line + "\n" for line in table_lines(series, answer.columns, width)))


def table_lines(series: SeriesRows, columns: Sequence[str], width: int) -> list[str]:
    """The header and rows of one series, fitted to `width` where they can be."""
    with_ms = bool((series.ts % 1000 != 0).any())
    text = np.datetime_as_string(series.ts.astype("datetime64[ms]"), unit="ms" if with_ms else "s")
    times = [t.replace("T", " ") for t in text.tolist()]
    cells = {
        name: [str(v) for v in col.tolist()]
        if col.dtype.kind in "iu"
        else [number_text(v) for v in col.tolist()]
        for name, col in ((name, series.columns[name]) for name in columns)
    }
    widths = {name: max(len(name), *map(len, cells[name])) for name in columns}
    time_width = max(len("time"), *map(len, times))
    fewer = [name for name in columns if name != "missing"]
    layouts = [(list(columns), 2), (fewer, 2), (fewer, 1)]
    for names, gap in layouts:
        if time_width + sum(gap + widths[n] for n in names) <= width:
            break
    pad = " " * gap
    lines = ["time".ljust(time_width) + "".join(pad + n.rjust(widths[n]) for n in names)]
    for i, stamp in enumerate(times):
        lines.append(
            stamp.ljust(time_width) + "".join(pad + cells[n][i].rjust(widths[n]) for n in names)
        )
    return lines
