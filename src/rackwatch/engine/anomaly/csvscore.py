"""`rackwatch detect`: score a univariate CSV (`timestamp,value`) as a stream.

Rows are read and scored strictly in file order, in chunks, through the same
`AnomalyDetector` as the live stream (one series): a row's score depends on it and the rows
above it only, so cutting the file after row k leaves the first k scores unchanged.

Accepted input (UTF-8, a BOM is skipped, blank lines are skipped):

- two comma-separated columns per line, `timestamp,value`; fields may be quoted and padded
  with spaces; a line longer than `MAX_LINE_BYTES` is refused;
- a header line is optional: the first line is a header when neither of its fields parses
  (any names, e.g. `time,cpu`);
- timestamps are all ISO 8601 (`2026-01-01T00:00:00Z`, `2026-01-01 00:00:00.250+02:00`, a
  date alone; no offset means UTC) or all epoch numbers, in seconds or milliseconds (decimals
  allowed). `epoch_unit="auto"` takes milliseconds when the first timestamp is at least
  1e11 (1973 in ms, year 5138 in s), seconds otherwise;
- timestamps must not decrease (equal ones are allowed);
- values are decimal numbers of any scale; an empty value is a NULL reading (scored by the
  NULL-run detector, written back empty); `nan` or `inf` are refused.

Output: `timestamp,value,anomaly_score`, the timestamp and value as they were written in the
input, the score with 6 decimals. It is written to a temporary file beside the target and
renamed at the end, so a refused input leaves no output (and an existing file untouched).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
import numpy.typing as npt

from rackwatch.engine.anomaly.stream import AnomalyDetector, DetectorConfig
from rackwatch.errors import RackwatchError

MAX_LINE_BYTES = 65_536
CHUNK_ROWS = 65_536
EPOCH_MS_FROM = 1e11
"""An epoch timestamp at least this large is taken as milliseconds (`epoch_unit="auto"`)."""
HEADER = ("timestamp", "value", "anomaly_score")
EPOCH_UNITS = ("auto", "s", "ms")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_US_PER = {"s": 1_000_000.0, "ms": 1_000.0}


class CsvInputError(RackwatchError):
    """The input CSV cannot be scored; `line` is 1-based (None for the file as a whole)."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class DetectSummary:
    rows: int
    null_rows: int
    anomalies: int
    """Anomalies started (score >= the config's `on`, ended below `off`)."""
    anomalous_rows: int
    max_score: float
    has_header: bool
    timestamps: str
    """'ISO 8601', 'epoch seconds' or 'epoch milliseconds'."""
    seconds: float


Progress = Callable[[int, int], None]
"""Called after each chunk with (bytes read, file size)."""


def detect_csv(
    source: Path,
    target: Path,
    *,
    config: DetectorConfig | None = None,
    epoch_unit: str = "auto",
    on_progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> DetectSummary:
    """Score `source` into `target` (see the module docstring); CsvInputError on a bad input,
    OSError if a file cannot be read or written. Memory: one chunk of rows."""
    if epoch_unit not in EPOCH_UNITS:
        raise ValueError(f"epoch_unit must be one of {EPOCH_UNITS}, got {epoch_unit!r}")
    started = time.perf_counter()
    detector = AnomalyDetector(config, capacity=1)
    on = detector.config.on
    total = source.stat().st_size
    reader = _Reader(source, epoch_unit)
    rows = nulls = anomalies = anomalous = 0
    max_score = 0.0
    with (
        source.open("rb") as raw,
        _replacing(target) as out,
    ):
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for chunk in reader.chunks(raw, chunk_rows):
            ts_text, value_text, ts_us, values = chunk
            scores = detector.score_arrays(ts_us, np.zeros(len(ts_us), np.int32), values)
            writer.writerows(
                zip(ts_text, value_text, [f"{s:.6f}" for s in scores.score.tolist()], strict=True)
            )
            rows += len(ts_us)
            nulls += int(np.isnan(values).sum())
            anomalies += sum(c.is_start for c in scores.changes)
            anomalous += int(np.count_nonzero(scores.score >= on))
            max_score = max(max_score, float(scores.score.max()))
            if on_progress is not None:
                on_progress(raw.tell(), total)
        if rows == 0:
            raise CsvInputError(
                source,
                None,
                "no data rows"
                + (" after the header" if reader.has_header else ": the file is empty")
                + "; expected lines `timestamp,value`",
            )
    return DetectSummary(
        rows,
        nulls,
        anomalies,
        anomalous,
        max_score,
        reader.has_header,
        reader.timestamp_kind,
        time.perf_counter() - started,
    )


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[TextIO]:
    """A text file that becomes `target` only if the block ends without an exception."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


Chunk = tuple[list[str], list[str], npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""Timestamps and values as written, timestamps in epoch microseconds, values (NaN = NULL)."""


class _Reader:
    """Splits the file into rows, parses and checks them a chunk at a time (NumPy parses the
    numbers of a whole chunk; a chunk it refuses is parsed again row by row to name the line),
    and remembers the file's conventions."""

    def __init__(self, path: Path, epoch_unit: str) -> None:
        self.path = path
        self.epoch_unit = epoch_unit
        self.has_header = False
        self.timestamp_kind = ""
        self._iso: bool | None = None
        self._scale = 0.0
        self._last_us: int | None = None
        self._last_line = 0

    def chunks(self, raw: BinaryIO, size: int) -> Iterator[Chunk]:
        for numbers, stamps, values in self._rows(raw, size):
            ts_us = self._timestamps(numbers, stamps)
            yield stamps, values, ts_us, self._values(numbers, values)

    def _rows(self, raw: BinaryIO, size: int) -> Iterator[tuple[list[int], list[str], list[str]]]:
        numbers: list[int] = []
        stamps: list[str] = []
        values: list[str] = []
        number = 0
        pending = b""
        first = True
        while True:
            block = raw.read(1 << 20)
            lines = (pending + block).split(b"\n")
            pending = lines.pop() if block else b""
            if len(pending) > MAX_LINE_BYTES:
                self._too_long(number + len(lines) + 1)
            for line in lines:
                number += 1
                if len(line) > MAX_LINE_BYTES:
                    self._too_long(number)
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    raise CsvInputError(self.path, number, "not UTF-8 text") from None
                text = text.removeprefix("\ufeff").strip() if number == 1 else text.strip()
                if not text:
                    continue
                fields = _split(text)
                if len(fields) != 2:
                    raise CsvInputError(
                        self.path,
                        number,
                        f"expected 2 columns `timestamp,value`, found {len(fields)}: "
                        + _show(text),
                    )
                if first:
                    first = False
                    if _is_header(fields):
                        self.has_header = True
                        continue
                numbers.append(number)
                stamps.append(fields[0])
                values.append(fields[1])
                if len(numbers) >= size:
                    yield numbers, stamps, values
                    numbers, stamps, values = [], [], []
            if not block:
                break
        if numbers:
            yield numbers, stamps, values

    def _too_long(self, number: int) -> None:
        raise CsvInputError(
            self.path, number, f"line longer than {MAX_LINE_BYTES:,} bytes; is it a CSV?"
        )

    def _values(self, numbers: list[int], texts: list[str]) -> npt.NDArray[np.float64]:
        text = np.array(texts)
        empty = text == ""
        try:
            values = np.where(empty, "nan", text).astype(np.float64)
        except ValueError:
            values = np.array([self._value(n, t) for n, t in zip(numbers, texts, strict=True)])
        bad = np.flatnonzero(~np.isfinite(values) & ~empty)
        if len(bad):
            self._value(numbers[bad[0]], texts[bad[0]])
        return values

    def _value(self, number: int, text: str) -> float:
        if not text:
            return math.nan
        value = _number(text)
        if value is None:
            raise CsvInputError(self.path, number, f"value {_show(text)} is not a number")
        if not math.isfinite(value):
            raise CsvInputError(
                self.path,
                number,
                f"value {_show(text)} is not finite; leave the field empty for a NULL",
            )
        return value

    def _timestamps(self, numbers: list[int], texts: list[str]) -> npt.NDArray[np.int64]:
        if self._iso is None:
            self._conventions(texts[0])
        if self._iso:
            ts = np.array([self._iso_row(n, t) for n, t in zip(numbers, texts, strict=True)])
        else:
            try:
                epoch = np.array(texts).astype(np.float64)
            except ValueError:
                epoch = np.array(
                    [self._epoch_row(n, t) for n, t in zip(numbers, texts, strict=True)]
                )
            us = epoch * self._scale
            bad = np.flatnonzero(~(np.abs(us) < 2.0**62))
            if len(bad):
                raise CsvInputError(
                    self.path, numbers[bad[0]], f"timestamp {_show(texts[bad[0]])} is out of range"
                )
            ts = np.rint(us).astype(np.int64)
        before = np.r_[self._last_us if self._last_us is not None else ts[0], ts[:-1]]
        back = np.flatnonzero(ts < before)
        if len(back):
            i = int(back[0])
            previous = numbers[i - 1] if i else self._last_line
            raise CsvInputError(
                self.path,
                numbers[i],
                f"timestamp {_show(texts[i])} is before the previous row's (line {previous}): "
                "rows must be in time order",
            )
        self._last_us, self._last_line = int(ts[-1]), numbers[-1]
        return ts.astype(np.int64)

    def _conventions(self, first: str) -> None:
        epoch = _number(first)
        self._iso = epoch is None
        if epoch is None:
            self.timestamp_kind = "ISO 8601"
            return
        unit = self.epoch_unit
        if unit == "auto":
            unit = "ms" if abs(epoch) >= EPOCH_MS_FROM else "s"
        self._scale = _US_PER[unit]
        self.timestamp_kind = "epoch " + ("milliseconds" if unit == "ms" else "seconds")

    def _iso_row(self, number: int, text: str) -> int:
        try:
            return _iso_us(text)
        except ValueError:
            self._mixed(number, text)
            raise CsvInputError(
                self.path, number, f"timestamp {_show(text)} is not an ISO 8601 date and time"
            ) from None

    def _epoch_row(self, number: int, text: str) -> float:
        value = _number(text)
        if value is None:
            self._mixed(number, text)
            raise CsvInputError(self.path, number, f"timestamp {_show(text)} is not a number")
        return value

    def _mixed(self, number: int, text: str) -> None:
        if _number(text) is not None if self._iso else _is_iso(text):
            raise CsvInputError(
                self.path,
                number,
                f"timestamp {_show(text)} is not {self.timestamp_kind} like the first row's; "
                "use one format throughout",
            )


def _is_header(fields: list[str]) -> bool:
    """Neither field parses: names, not data (a row with a bad value is data, refused)."""
    stamp, value = fields
    return bool(value) and _number(value) is None and _number(stamp) is None and not _is_iso(stamp)


def _split(text: str) -> list[str]:
    if '"' in text:
        return [field.strip() for field in next(csv.reader([text], skipinitialspace=True))]
    return [field.strip() for field in text.split(",")]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_iso(text: str) -> bool:
    try:
        _iso_us(text)
    except ValueError:
        return False
    return True


def _iso_us(text: str) -> int:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
