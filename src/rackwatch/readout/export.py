"""`rackwatch export`: a time range of stored series written to files, from the store or, while
a `rackwatch run` holds it, through that server's REST API (as `rackwatch query` reads).

- JSON lines (the default): one object per row, the rows of `rackwatch query --format json`
  (`{"timestamp", "ts_ms", "entity", "metric", "value"}` for raw samples; `open, high, low,
  close, avg, count, missing` for buckets, whose timestamp is the bucket's start), in time
  order, one file per UTC day named as the founding document names its exports:
  `monitoring_YYYYMMDD.jsonl` (`.jsonl.gz` with gzip). A day larger than `max_bytes` goes on
  in parts `monitoring_YYYYMMDD.1.jsonl`, `.2.jsonl`… (the number before the extension, so
  that `.gz` stays last). `max_bytes` bounds each file as it lies on disk, compressed or not
  (default 10 MiB, the document's rotation size); a part holds at least one row.
- Parquet: `store.archive.export_parquet`, the store's archive laid out Hive-style, a file
  per day and metric of the tier asked for
  (`<out>/tier=<tier>/date=YYYY-MM-DD/metric=<metric>/part-0.parquet`), which Spark, Trino
  and DuckDB read as one partitioned table (docs/ARCHIVE.md).

Every file is written under a temporary name and renamed once its whole day is written, so
an interrupted export leaves whole days only. An existing file of a day in the range is never
replaced unless `force`; then a day's earlier files are replaced by its new ones (stale parts
removed; a day that has no rows now keeps its files). Memory stays bounded: rows are read in
chunks of about CHUNK_ROWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import numpy as np
import orjson

from rackwatch.api.params import ParamError, excerpt, parse_time
from rackwatch.model import SeriesKey
from rackwatch.readout import fetch
from rackwatch.readout.fetch import Answer, NoSeries, OpenStore, ReadoutError
from rackwatch.readout.formats import duration_text, iso_times
from rackwatch.store import archive
from rackwatch.store.archive import day_name, export_parquet
from rackwatch.store.base import (
    DAY_MS,
    RAW_COLUMNS,
    ROLLUP_COLUMNS,
    Query,
    QueryResult,
    Store,
    Tier,
)

FORMATS = ("jsonl", "parquet")
PREFIX = "monitoring"
"""File names as the founding document's JSON exporter writes them: `monitoring_20250103…`."""
DEFAULT_OUT = Path("monitoring_data")
"""The founding document's export directory."""
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
"""The founding document's rotation size (10 MB, `10*1024*1024`)."""
MIN_MAX_BYTES = 1024
MAX_MAX_BYTES = 1 << 40
CHUNK_ROWS = 200_000
"""About the most rows read (and encoded) at once."""
MAX_DAYS = 3660
"""The longest range accepted (about ten years: the 1-hour tier keeps five by default)."""
GZIP_LEVEL = 6
"""gzip's own default: level 9 is much slower for a few percent."""

_GZ_END = 16
"""Room kept for the end of a gzip stream: the last (empty) block and the 8-byte trailer."""
_SIZE = re.compile(r"([0-9]{1,20})\s*(?:([KMGT])(iB|B)?)?", re.IGNORECASE)


class ExportError(fetch.OptionError):
    """The export cannot be done as asked; `option` names the option at fault, if one is."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    """Where and how to write (checked by `options`)."""

    out_dir: Path = DEFAULT_OUT
    output_format: str = "jsonl"
    gzip: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    force: bool = False


def options(
    out_dir: Path | None = None,
    output_format: str = "jsonl",
    use_gzip: bool | None = None,
    max_bytes: str | None = None,
    force: bool = False,
) -> Options:
    """The options, checked; ExportError names the one at fault. `use_gzip` and `max_bytes`
    are None when not given (they only apply to JSON lines)."""
    fmt = output_format.strip().lower()
    if fmt not in FORMATS:
        raise ExportError(
            f"unknown format {excerpt(output_format)}: use one of {', '.join(FORMATS)}", "--format"
        )
    if fmt == "parquet" and use_gzip:
        raise ExportError("Parquet files are compressed already (zstd): drop --gzip", "--gzip")
    if fmt == "parquet" and max_bytes is not None:
        raise ExportError(
            "Parquet files are written one per day and metric, not rotated: drop --max-bytes",
            "--max-bytes",
        )
    size = DEFAULT_MAX_BYTES if max_bytes is None else parse_size(max_bytes)
    out = DEFAULT_OUT if out_dir is None else out_dir
    check_out_dir(out)
    return Options(out, fmt, bool(use_gzip), size, force)


def parse_size(text: str) -> int:
    """A file size in bytes: a number, or with a unit as `split -b` reads them: K, M, G, T
    (and KiB…) are powers of 1024, KB, MB… powers of 1000; between 1 KiB and 1 TiB.

    >>> parse_size("4096"), parse_size("10M"), parse_size("10MiB"), parse_size("10MB")
    (4096, 10485760, 10485760, 10000000)
    >>> parse_size("99999999999999999999")
    Traceback (most recent call last):
    ...
    rackwatch.readout.export.ExportError: --max-bytes '99999999999999999999' is more than 1 TiB
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ExportError(
            f"--max-bytes {excerpt(text)} is not a size: give bytes (10485760) or a size with "
            "a unit (10M or 10MiB: 1024-based; 10MB: 1000-based)",
            "--max-bytes",
        )
    number, unit, suffix = match.groups()
    base = 1000 if suffix and suffix.upper() == "B" else 1024
    power = " KMGT".index(unit.upper()) if unit else 0
    size = int(number) * int(base**power)
    if size > MAX_MAX_BYTES:
        raise ExportError(f"--max-bytes {excerpt(text)} is more than 1 TiB", "--max-bytes")
    if size < MIN_MAX_BYTES:
        raise ExportError(
            f"--max-bytes {excerpt(text)} is less than {MIN_MAX_BYTES} bytes", "--max-bytes"
        )
    return size


def check_out_dir(out: Path) -> None:
    """ExportError unless `out` is a directory we may write in, or one we may create: checked
    before anything is read, so that a bad --out costs nothing."""
    full = out.absolute()
    there = next(path for path in (full, *full.parents) if path.exists())
    if not there.is_dir():
        raise ExportError(f"{there} is not a directory", "--out")
    if not os.access(there, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write in {there} (permission denied)", "--out")


def parse_range(from_text: str, to_text: str | None, now_ms: int) -> tuple[int, int | None]:
    """--from and --to as epoch ms: ISO 8601 (UTC when no zone is given), epoch ms, `now`, or
    `-7d` before now. --to None: up to the newest sample.

    >>> parse_range("2026-01-01", "2026-01-02T00:00:00Z", now_ms=0)
    (1767225600000, 1767312000000)
    >>> parse_range("-1h", None, now_ms=7_200_000)
    (3600000, None)
    """
    try:
        start = parse_time(from_text, now_ms=now_ms, name="from")
    except ParamError as exc:
        raise ExportError(str(exc), "--from") from None
    if to_text is None:
        return start, None
    try:
        end = parse_time(to_text, now_ms=now_ms, name="to")
    except ParamError as exc:
        raise ExportError(str(exc), "--to") from None
    if start >= end:
        raise ExportError(f"--from ({_utc(start)}) must be before --to ({_utc(end)})", "--from")
    return start, end


# --------------------------------------------------------------------------- sources


class Source(Protocol):
    """Rows of the selected series (entity glob, metrics), from the store or a server."""

    where: str
    """Where the rows come from, for people."""
    n_series: int
    newest_ms: int | None
    """The newest sample of the selected series (None: no sample yet)."""

    def query(self, q: Query) -> QueryResult:
        """`q` over the source's selection (its entity and metrics replace the query's)."""
        ...

    def close(self) -> None: ...


class LocalSource:
    """The store itself (this process opened it; `close` closes it)."""

    def __init__(
        self,
        store: Store,
        keys: Sequence[SeriesKey],
        entity: str,
        metrics: tuple[str, ...] | None,
        where: str = "the store",
    ) -> None:
        fetch.check_metric_names(metrics, {k.metric for k in keys})
        self.store, self.entity, self.metrics, self.where = store, entity, metrics, where
        latest = store.latest(entity, metrics)
        self.n_series = len(latest.keys)
        self.newest_ms = int(latest.ts.max()) if len(latest.ts) else None

    def query(self, q: Query) -> QueryResult:
        return self.store.query(replace(q, entity=self.entity, metrics=self.metrics))

    def close(self) -> None:
        self.store.close()


class RemoteSource:
    """The REST API of the `rackwatch run` that holds the store (`/status`, `/live`,
    `/series`), read in windows the server answers (`fetch.split_range`)."""

    def __init__(
        self,
        url: str,
        entity: str,
        metrics: tuple[str, ...] | None,
        token: Callable[[], str | None] = lambda: None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.where = f"the server at {url}"
        self.url = url
        self.select = fetch.selection(entity, metrics)
        self.api = fetch.connect(url, token, transport=transport)
        try:
            newest = fetch.live_newest(self.api, self.select)
        except BaseException:
            self.close()
            raise
        self.n_series = len(newest)
        self.newest_ms = max(newest) if newest else None

    def query(self, q: Query) -> QueryResult:
        tier = None if q.tier is None else Tier(q.tier)
        step = q.step_ms if tier is None else (tier.width_ms or None)
        steps = [] if step is None else [("step", str(step))]
        try:
            parts = [
                self.api.get("/series", [*self.select, ("from", str(lo)), ("to", str(hi)), *steps])
                for lo, hi in fetch.split_range(q.start_ms, q.end_ms, self.n_series, step)
            ]
        except httpx.TransportError as exc:
            raise ReadoutError(f"lost the server at {self.url} during the export: {exc}") from None
        answered = {Tier(part["tier"]) for part in parts}
        if len(answered) > 1 or (tier is not None and answered != {tier}):
            raise ReadoutError(
                f"the server answered this range from the {', '.join(sorted(answered))} "
                "tier(s), not one tier as asked: give a later --from or another --step"
            )
        return _result(fetch.join_windows(parts, q.start_ms, q.end_ms))

    def close(self) -> None:
        self.api.client.close()


def _result(answer: Answer) -> QueryResult:
    """A server's answer as a QueryResult. Its series ids number the series of this answer
    (the server does not send the store's)."""
    series = answer.series
    offsets = np.zeros(len(series) + 1, np.int64)
    np.cumsum([len(rows) for rows in series], out=offsets[1:])

    def joined(arrays: list[Any], dtype: Any) -> Any:
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype)

    return QueryResult(
        tier=Tier(answer.tier),
        bucket_ms=answer.bucket_ms,
        keys=tuple(SeriesKey(rows.entity, rows.metric) for rows in series),
        series_ids=np.arange(len(series), dtype=np.int32),
        offsets=offsets,
        ts=joined([rows.ts for rows in series], np.int64),
        columns={
            name: joined(
                [rows.columns[name] for rows in series],
                np.int64 if name in ("count", "missing") else np.float64,
            )
            for name in answer.columns
        },
    )


def open_source(
    open_store: OpenStore,
    data_dir: Path,
    entity: str = "**",
    metrics: tuple[str, ...] | None = None,
    token: str | None = None,
    *,
    on_remote: Callable[[str], None] | None = None,
) -> Source:
    """The store of `data_dir`, or, while a `rackwatch run` holds it, its server (as
    `fetch.read_through` decides). UnknownMetric for a metric nobody knows."""

    def local(store: Store, keys: Sequence[SeriesKey]) -> Source:
        try:
            return LocalSource(store, keys, entity, metrics, f"the store in {data_dir}")
        except BaseException:
            store.close()
            raise

    def remote(url: str) -> Source:
        return RemoteSource(url, entity, metrics, lambda: fetch.read_token(token, data_dir))

    return fetch.read_through(
        open_store, data_dir, local, remote, on_remote=on_remote, again="export"
    )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Plan:
    """What will be written: rows of `tier` (buckets of `bucket_ms`; 0 = raw samples) in
    [start_ms, end_ms), day by day (`days`: the day's start and its part of the range)."""

    tier: Tier
    bucket_ms: int
    start_ms: int
    end_ms: int
    n_series: int
    days: tuple[tuple[int, int, int], ...]


def day_windows(
    start_ms: int, end_ms: int, step_ms: int | None = None
) -> list[tuple[int, int, int]]:
    """(day, lo, hi) for each UTC day of [start_ms, end_ms): the part of the range whose rows
    lie on that day. With a step, cuts fall on its multiples, so that each bucket is read
    whole, on the day of its start.

    >>> day_windows(DAY_MS - 10, DAY_MS + 5)
    [(0, 86399990, 86400000), (86400000, 86400000, 86400005)]
    >>> [(d // 3_600_000, lo // 3_600_000, hi // 3_600_000)
    ...  for d, lo, hi in day_windows(0, 2 * DAY_MS, 7 * 3_600_000)]  # 7 h: 21:00 is day 0's
    [(0, 0, 28), (24, 28, 48)]
    """
    align = step_ms or 1
    out = []
    day = start_ms - start_ms % DAY_MS
    while day < end_ms:
        lo, hi = max(start_ms, _ceil(day, align)), min(end_ms, _ceil(day + DAY_MS, align))
        if lo < hi:
            out.append((day, lo, hi))
        day += DAY_MS
    return out


def _ceil(ms: int, align: int) -> int:
    return -(-ms // align) * align


def plan(
    source: Source,
    start_ms: int,
    to_ms: int | None,
    step_ms: int | None,
    output_format: str = "jsonl",
) -> Plan:
    """The days to write, checked before anything is: NoSeries when nothing matches or the
    range ends before --from; ExportError when rows of the step are no longer kept from
    `start_ms` (the store would answer from a coarser tier) or the range is too long.

    The range ends at `to_ms`, or at the newest sample (included) when that comes first.
    With a step, it covers the buckets that start in it, whole.
    """
    if source.newest_ms is None:
        raise NoSeries(
            f"no series with samples match this entity and these metrics in {source.where}"
        )
    end = source.newest_ms + 1 if to_ms is None else min(to_ms, source.newest_ms + 1)
    if start_ms >= end:
        raise NoSeries(
            f"nothing to export: the newest matching sample is at {_utc(source.newest_ms)} "
            f"(UTC), before --from ({_utc(start_ms)})"
        )
    if output_format == "parquet" and step_ms not in (None, *(t.width_ms for t in Tier)):
        raise ExportError(
            "Parquet files hold a tier as stored: --step raw, 1m or 1h (or export JSON lines)",
            "--step",
        )
    if step_ms:
        start_ms, end = _ceil(start_ms, step_ms), _ceil(end, step_ms)
    n_days = (end - 1) // DAY_MS - start_ms // DAY_MS + 1
    if n_days > MAX_DAYS:
        raise ExportError(
            f"the range spans {n_days:,} days, more than {MAX_DAYS:,}: give a later --from "
            "or an earlier --to",
            "--from",
        )
    # The store answers from the coarsest tier that still holds the start: learn which.
    probe = source.query(Query(start_ms, start_ms + 1, step_ms=step_ms))
    if probe.bucket_ms != (step_ms or 0):
        wanted = "raw samples" if not step_ms else f"buckets of {duration_text(step_ms)}"
        raise ExportError(
            f"{wanted} are no longer kept from {_utc(start_ms)} (UTC): {source.where} answers "
            f"that far back from the {probe.tier} tier; give a later --from, or --step "
            f"{probe.tier if probe.tier is not Tier.RAW else '1m'}",
            "--step" if step_ms else "--from",
        )
    days = tuple(day_windows(start_ms, end, step_ms))
    return Plan(probe.tier, probe.bucket_ms, start_ms, end, source.n_series, days)


# --------------------------------------------------------------------------- names


def part_name(day_ms: int, part: int = 0, gz: bool = False) -> str:
    """The file of a day's `part` (0: the first, without a number).

    >>> part_name(1_767_225_600_000), part_name(1_767_225_600_000, 2, gz=True)
    ('monitoring_20260101.jsonl', 'monitoring_20260101.2.jsonl.gz')
    """
    number = f".{part}" if part else ""
    return f"{PREFIX}_{_stamp(day_ms)}{number}.jsonl" + (".gz" if gz else "")


def _stamp(day_ms: int) -> str:
    return dt.datetime.fromtimestamp(day_ms / 1000, dt.UTC).strftime("%Y%m%d")


_PART = re.compile(rf"{PREFIX}_([0-9]{{8}})(?:\.[1-9][0-9]*)?\.jsonl(?:\.gz)?")


def day_files(out_dir: Path, fmt: str, days: Sequence[int], tier: Tier) -> dict[int, list[Path]]:
    """The files already in `out_dir` for each of `days` (any part, compressed or not)."""
    found: dict[int, list[Path]] = {}
    if not out_dir.is_dir():
        return found
    if fmt == "parquet":
        for day in days:
            files = archive.day_files(out_dir, tier, day)
            if files:
                found[day] = files
        return found
    stamps = {_stamp(day): day for day in days}
    for entry in sorted(os.listdir(out_dir)):
        match = _PART.fullmatch(entry)
        if match is not None and match.group(1) in stamps:
            found.setdefault(stamps[match.group(1)], []).append(out_dir / entry)
    return found


def check_targets(the_plan: Plan, opts: Options) -> dict[int, list[Path]]:
    """The files of the range's days already there; ExportError naming one unless `force`."""
    found = day_files(
        opts.out_dir, opts.output_format, [d for d, _, _ in the_plan.days], the_plan.tier
    )
    if found and not opts.force:
        paths = sorted(p for files in found.values() for p in files)
        more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
        raise ExportError(
            f"{paths[0]} already exists{more}: give --force to replace the files of the days "
            "exported, or another --out",
            "--out",
        )
    return found


# --------------------------------------------------------------------------- JSON lines


def jsonl_lines(result: QueryResult) -> list[str]:
    """The rows as JSON lines, in time order (then series), each the row object of
    `rackwatch query --format json` (NaN and infinities as null).

    >>> from rackwatch.model import SeriesKey
    >>> r = QueryResult(Tier.RAW, 0, (SeriesKey("room", "power_watts"), SeriesKey("a", "b")),
    ...     np.array([0, 1], np.int32), np.array([0, 2, 3]), np.array([0, 5000, 0]),
    ...     {"value": np.array([1.5, np.nan, 7.0])})
    >>> print("".join(jsonl_lines(r)), end="")
    {"timestamp":"1970-01-01T00:00:00.000Z","ts_ms":0,"entity":"room","metric":"power_watts","value":1.5}
    {"timestamp":"1970-01-01T00:00:00.000Z","ts_ms":0,"entity":"a","metric":"b","value":7.0}
    {"timestamp":"1970-01-01T00:00:05.000Z","ts_ms":5000,"entity":"room","metric":"power_watts","value":null}
    """
    if len(result) == 0:
        return []
    order = np.argsort(result.ts, kind="stable")
    which = np.repeat(np.arange(len(result.keys)), np.diff(result.offsets))[order]
    # json.dumps escapes non-ASCII: every line is ASCII, one byte per character.
    heads = [
        f',"entity":{json.dumps(k.entity)},"metric":{json.dumps(k.metric)}' for k in result.keys
    ]
    ts = result.ts[order]
    names = ROLLUP_COLUMNS if result.bucket_ms > 0 else RAW_COLUMNS
    values = [_json_texts(np.ascontiguousarray(result.columns[n][order])) for n in names]
    template = '{"timestamp":"%s","ts_ms":%d%s' + "".join(f',"{n}":%s' for n in names) + "}\n"
    who = [heads[i] for i in which.tolist()]
    return [template % row for row in zip(iso_times(ts), ts.tolist(), who, *values, strict=True)]


def _json_texts(column: Any) -> list[str]:
    """Each value of a NumPy column as JSON text (NaN, inf: null), in one orjson call."""
    text: str = orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text[1:-1].split(",")


def _bound(n: int) -> int:
    """More than deflate may make of n bytes, a sync flush included (zlib's deflateBound
    for any settings, plus room)."""
    return n + (n >> 3) + (n >> 6) + 64


def _fits(room: int) -> int:
    """The most bytes n with _bound(n) <= room.

    >>> all(_bound(_fits(r)) <= r < _bound(_fits(r) + 80) for r in range(64, 5000))
    True
    """
    return max(0, (room - 64) * 64 // 73)


@dataclass
class _Part:
    tmp: Path
    name: str
    file: IO[bytes]
    gz: gzip.GzipFile | None
    rows: int = 0
    pending: int = 0
    """Bytes given to the compressor since its last flush (gzip): not yet counted on disk."""


@dataclass
class DayWriter:
    """One day's JSON lines into parts of at most `max_bytes` on disk, under temporary names
    until `commit`. With gzip the size counted is the compressed one: the compressor is
    flushed (a sync flush, a few bytes) when what it holds might no longer fit, so each part
    ends within about a row of the limit without ever passing it."""

    out_dir: Path
    day_ms: int
    use_gzip: bool
    max_bytes: int
    parts: list[_Part] = field(default_factory=list)

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        data = "".join(lines).encode()
        ends = np.cumsum([len(line) for line in lines])  # ASCII: bytes = characters
        i = 0
        while i < len(lines):
            part = self.parts[-1] if self.parts else self._open()
            start = int(ends[i - 1]) if i else 0
            k = int(np.searchsorted(ends, start + self._room(part), side="right"))
            if k > i or part.rows == 0:  # a part holds at least one row
                k = max(k, i + 1)
                self._put(part, data[start : int(ends[k - 1])])
                part.rows += k - i
                i = k
            elif part.gz is not None and part.pending:
                part.gz.flush(zlib.Z_SYNC_FLUSH)  # learn the real size, then try again
                part.pending = 0
            else:
                self._close(part)
                self._open()

    def _room(self, part: _Part) -> int:
        """The bytes of JSON lines that surely still fit in `part`."""
        if part.gz is None:
            return self.max_bytes - part.file.tell()
        return _fits(self.max_bytes - part.file.tell() - _GZ_END) - part.pending

    @staticmethod
    def _put(part: _Part, chunk: bytes) -> None:
        if part.gz is None:
            part.file.write(chunk)
        else:
            part.gz.write(chunk)
            part.pending += len(chunk)

    def _open(self) -> _Part:
        name = part_name(self.day_ms, len(self.parts), self.use_gzip)
        self.out_dir.mkdir(parents=True, exist_ok=True)  # only once there is a row to write
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.out_dir)
        file = os.fdopen(fd, "wb")
        gz = None
        if self.use_gzip:  # mtime 0: the same rows make the same bytes
            gz = gzip.GzipFile(name.removesuffix(".gz"), "wb", GZIP_LEVEL, file, mtime=0)
        self.parts.append(_Part(Path(tmp), name, file, gz))
        return self.parts[-1]

    @staticmethod
    def _close(part: _Part) -> None:
        if part.file.closed:
            return
        if part.gz is not None:
            part.gz.close()
        part.file.flush()
        os.fsync(part.file.fileno())
        part.file.close()

    def commit(self, force: bool = False) -> list[Path]:
        """Close the parts and give them their names; return them (none for a day without
        rows). Without `force` a file that appeared meanwhile is not replaced."""
        done = []
        for part in self.parts:
            self._close(part)
            final = self.out_dir / part.name
            if not force and final.exists():
                raise ExportError(f"{final} already exists: give --force to replace it", "--out")
            os.replace(part.tmp, final)
            done.append(final)
        self.parts = []
        return done

    def abort(self) -> None:
        """Drop the parts not committed (their temporary files)."""
        for part in self.parts:
            with contextlib.suppress(OSError):
                if part.gz is not None:
                    part.gz.close()
                part.file.close()
            with contextlib.suppress(OSError):
                part.tmp.unlink()
        self.parts = []


# --------------------------------------------------------------------------- the export


@dataclass
class Summary:
    where: str
    plan: Plan
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0


Progress = Callable[[float, int], None]
"""Told (days done, fractional; rows written so far) as the export goes."""


def export(
    source: Source,
    the_plan: Plan,
    opts: Options,
    on_progress: Progress | None = None,
) -> Summary:
    """Write the plan's days, day by day. ExportError before anything is written when a day's
    file is already there (without `force`); NoSeries when the range holds no row (nothing
    is written or removed)."""
    began = time.monotonic()
    existing = check_targets(the_plan, opts)
    summary = Summary(source.where, the_plan)
    counted = _Counted(source)
    for number, (day, lo, hi) in enumerate(the_plan.days):
        if opts.output_format == "parquet":
            files = export_parquet(counted, lo, hi, opts.out_dir, tiers=[the_plan.tier])
        else:
            files = _jsonl_day(counted, the_plan, opts, day, lo, hi, number, on_progress)
        if files:  # a day without rows now keeps what an earlier export wrote
            for stale in set(existing.get(day, [])) - set(files):
                stale.unlink(missing_ok=True)
        summary.files += files
        summary.bytes += sum(path.stat().st_size for path in files)
        if on_progress is not None:
            on_progress(number + 1, counted.rows)
    if counted.rows == 0:
        raise NoSeries(
            f"nothing to export: {source.where} holds no row of the matching series from "
            f"{_utc(the_plan.start_ms)} to {_utc(the_plan.end_ms)} (UTC)"
        )
    summary.rows = counted.rows
    summary.seconds = time.monotonic() - began
    return summary


class _Counted:
    """A source that counts the rows it gives."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.rows = 0

    def query(self, q: Query) -> QueryResult:
        result = self.source.query(q)
        self.rows += len(result)
        return result


def _jsonl_day(
    source: _Counted,
    the_plan: Plan,
    opts: Options,
    day: int,
    lo: int,
    hi: int,
    number: int,
    on_progress: Progress | None,
) -> list[Path]:
    step = the_plan.bucket_ms or None
    chunks = fetch.split_range(lo, hi, max(the_plan.n_series, 1), step, max_rows=CHUNK_ROWS)
    writer = DayWriter(opts.out_dir, day, opts.gzip, opts.max_bytes)
    try:
        for done, (c_lo, c_hi) in enumerate(chunks, 1):
            result = source.query(Query(c_lo, c_hi, step_ms=step))
            if (result.tier, result.bucket_ms) != (the_plan.tier, the_plan.bucket_ms):
                raise ReadoutError(
                    f"{day_name(day)} was answered from the {result.tier} tier, not the "
                    f"{the_plan.tier} tier of the days before (retention ran meanwhile?): "
                    "give a later --from"
                )
            writer.write(jsonl_lines(result))
            if on_progress is not None:
                on_progress(number + done / len(chunks), source.rows)
        return writer.commit(opts.force)
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------- text


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def summary_rows(summary: Summary, out_dir: Path) -> list[tuple[str, str]]:
    """The summary as (name, text) lines, for people."""
    done = summary.plan
    kind = f"buckets of {duration_text(done.bucket_ms)}" if done.bucket_ms else "raw samples"
    names = [p.relative_to(out_dir).as_posix() for p in summary.files]
    shown = ", ".join(names) if len(names) <= 4 else f"{names[0]} … {names[-1]}"
    rate = summary.rows / summary.seconds if summary.seconds else 0.0
    return [
        ("source", summary.where),
        ("range (UTC)", f"{_utc(done.start_ms)} → {_utc(done.end_ms)}"),
        ("rows", f"{summary.rows:,} ({kind}, tier {done.tier}, {done.n_series} series)"),
        ("files", f"{len(names)} in {out_dir}: {shown}"),
        ("bytes", f"{summary.bytes:,} ({summary.bytes / max(summary.rows, 1):.1f} per row)"),
        ("seconds taken", f"{summary.seconds:.1f} ({rate:,.0f} rows/s)"),
    ]
