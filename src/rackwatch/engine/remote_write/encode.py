"""Batches -> Prometheus remote write 1.0 `WriteRequest` bytes (protobuf, before snappy).

The wire format (prometheus/prompb `remote.proto`, `types.proto`)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

It is written here with NumPy, not message by message: the labels of a series are encoded once
(when its id is first seen) into one pool of bytes, each sample is a fixed 22-byte row of which
its varint timestamp leaves 13 to 22 used, and the request is one gather over the pool, the
sample rows and the TimeSeries headers. Building the same request with Google's protobuf
runtime, one `Sample` per sample, is several times slower (bench/bench_remote_write.py); the
unit tests decode what this writes with that runtime.

A series is `rackwatch_<metric>` labelled by its entity path (`entity`, and `cluster`, `rack`,
`server`, `component` read from the path by position, as /metrics does when the inventory does
not know a path), plus the site's constant labels; docs/REMOTE_WRITE.md.

>>> from rackwatch.model import Batch, SeriesRegistry
>>> registry = SeriesRegistry()
>>> sid = registry.intern("c01/r01/s01", "power_watts")
>>> encoder = WriteRequestEncoder(registry)
>>> encoder.labels(sid)
[('__name__', 'rackwatch_power_watts'), ('cluster', 'c01'), ('entity', 'c01/r01/s01'), \
('rack', 'r01'), ('server', 's01')]
>>> request = encoder.encode(Batch.of([1000], [sid], [230.5]))
>>> request.n_samples, request.n_series, len(request.data)
(1, 1, 118)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch, SeriesRegistry

PREFIX = "rackwatch_"
"""Every metric name sent starts with this, as on /metrics (`rackwatch_power_watts`)."""
STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus' staleness marker: "this series has no value from here on" (value.StaleNaN)."""
PATH_LABELS = ("cluster", "rack", "server", "component")
RESERVED_LABELS = frozenset({"__name__", "entity", *PATH_LABELS})
NullPolicy = Literal["stale", "skip"]
"""What a NULL reading (NaN) becomes: Prometheus' staleness marker (a gap at once, the
default), or nothing (the series keeps its last value for the query's lookback)."""

_NAME_OK = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_BAD_CHAR = re.compile(r"[^a-zA-Z0-9_:]")
_MAX_LABEL_BYTES = 4096
"""A label name or value longer than this is refused (entity paths are far shorter)."""
_LABEL_CACHE = 100_000
"""Labels whose bytes are kept (entity paths are unique per entity: bounded)."""
_SAMPLE_ROW = 22
"""Bytes of one sample row: 0x12 len | 0x09 double(8) | 0x10 varint(<= 10)."""
_INT32_MAX = 2**31 - 1
_VARINT_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)
"""Shifts of the ten 7-bit groups of a 64-bit varint."""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One encoded request: protobuf bytes (not yet compressed), and what they hold."""

    data: bytes
    n_samples: int
    """Samples sent (NULL readings skipped under `nulls="skip"` and duplicates not counted)."""
    n_series: int
    n_skipped: int
    """Rows of the batch not sent: NULL readings under `nulls="skip"`, and repeated
    (series, instant) rows, of which only the last is sent."""


class WriteRequestEncoder:
    """Encodes Batches of one registry's series. Not thread-safe: one encoder per sink (the
    sink encodes in one worker thread at a time).

    `external_labels` are added to every series (a site name, a replica): their names must be
    valid Prometheus label names and differ from the labels rackwatch sets; empty values are
    refused (Prometheus reads an empty label as no label).
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        *,
        external_labels: Mapping[str, str] | None = None,
        nulls: NullPolicy = "stale",
    ) -> None:
        if nulls not in ("stale", "skip"):
            raise ValueError(f"nulls must be 'stale' or 'skip', got {nulls!r}")
        self.registry = registry
        self.nulls: NullPolicy = nulls
        self.external_labels = dict(external_labels or {})
        for name, value in self.external_labels.items():
            _check_external_label(name, value)
        self._pool = np.zeros(0, dtype=np.uint8)
        """Encoded labels of series 0..n-1, one after the other."""
        self._pool_used = 0
        self._label_start = np.zeros(0, dtype=np.int64)
        self._label_len = np.zeros(0, dtype=np.int64)

    def labels(self, series_id: int) -> list[tuple[str, str]]:
        """The labels of a series, sorted by name (`__name__` first), empty ones left out."""
        key = self.registry.key(series_id)
        found = {
            "__name__": metric_name(key.metric),
            "entity": key.entity,
            **dict(zip(PATH_LABELS, path_parts(key.entity), strict=True)),
            **self.external_labels,
        }
        return sorted((name, value) for name, value in found.items() if value)

    def encode(self, batch: Batch) -> WriteRequest:
        """The WriteRequest of a Batch: one TimeSeries per series, its samples in time order.

        Rows may come in any order. Of several rows of one series at one instant the last is
        sent (a TSDB refuses or drops the others anyway). A series id the registry does not
        know raises ValueError (nothing is encoded).
        """
        n_rows = len(batch)
        if n_rows == 0:
            return WriteRequest(b"", 0, 0, 0)
        series = batch.series
        lowest, highest = int(series.min()), int(series.max())
        if lowest < 0 or highest >= len(self.registry):
            raise ValueError(
                f"batch names series ids {lowest}..{highest}, the registry knows "
                f"0..{len(self.registry) - 1}: encode with the registry its source interns into"
            )
        self._learn(highest + 1)
        ts, value = batch.ts, batch.value
        if self.nulls == "skip":
            known = ~np.isnan(value)
            if not known.all():
                ts, series, value = ts[known], series[known], value[known]
        order = np.lexsort((ts, series))  # stable: of equal keys the last row stays last
        ts, series, value = ts[order], series[order], value[order]
        if len(ts) > 1:
            last = np.ones(len(ts), dtype=bool)
            last[:-1] = (series[1:] != series[:-1]) | (ts[1:] != ts[:-1])
            if not last.all():
                ts, series, value = ts[last], series[last], value[last]
        n_samples = len(ts)
        if n_samples == 0:
            return WriteRequest(b"", 0, 0, n_rows)
        bits = value.view(np.uint64)
        if self.nulls == "stale":
            # any NaN is a NULL reading here; a TSDB reads the marker as a gap
            bits = np.where(np.isnan(value), np.uint64(STALE_NAN_BITS), bits)
        rows, row_len = _sample_rows(ts, bits)

        starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
        group_ids = series[starts].astype(np.int64)
        sample_bytes = np.add.reduceat(row_len, starts)
        label_len = self._label_len[group_ids]
        body_len = label_len + sample_bytes
        header_len = 1 + _varint_len(body_len.astype(np.uint64))
        header_rows = np.zeros((len(starts), 11), dtype=np.uint8)
        header_rows[:, 0] = 0x0A  # WriteRequest.timeseries, length-delimited
        header_rows[:, 1:] = _varint_rows(body_len.astype(np.uint64))

        # One pool, three regions: the series' labels, then (as scratch past them, so the
        # labels are never copied) the sample rows and the headers; the request is the pieces
        # header, labels, samples of each series, gathered in order.
        sample_base = self._pool_used
        header_base = sample_base + rows.size
        self._reserve(header_base + header_rows.size)
        pool = self._pool
        pool[sample_base:header_base] = rows.reshape(-1)
        pool[header_base : header_base + header_rows.size] = header_rows.reshape(-1)
        row_index = np.arange(n_samples, dtype=np.int64) * _SAMPLE_ROW + sample_base
        n_groups = len(starts)
        piece_start = np.empty(n_groups * 2 + n_samples, dtype=np.int64)
        piece_len = np.empty_like(piece_start)
        # The pieces of series g (header, labels, then its rows) start after the 2 pieces of
        # each series before it and their rows, which come first in the sorted order.
        slot = starts.astype(np.int64) + 2 * np.arange(n_groups, dtype=np.int64)
        piece_start[slot] = header_base + np.arange(n_groups, dtype=np.int64) * 11
        piece_len[slot] = header_len
        piece_start[slot + 1] = self._label_start[group_ids]
        piece_len[slot + 1] = label_len
        is_row = np.ones(len(piece_start), dtype=bool)
        is_row[slot] = False
        is_row[slot + 1] = False
        piece_start[is_row] = row_index
        piece_len[is_row] = row_len
        data = pool[_ranges(piece_start, piece_len)].tobytes()
        return WriteRequest(data, n_samples, n_groups, n_rows - n_samples)

    def _learn(self, n_series: int) -> None:
        """Encode the labels of the series not seen yet, up to id `n_series - 1`."""
        known = len(self._label_len)
        if n_series <= known:
            return
        cache: dict[tuple[str, str], bytes] = {}
        blobs = [_encode_labels(self.labels(sid), cache) for sid in range(known, n_series)]
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
        starts = self._pool_used + np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        added = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        needed = self._pool_used + len(added)
        self._reserve(needed)
        self._pool[self._pool_used : needed] = added
        self._pool_used = needed
        self._label_start = np.concatenate([self._label_start, starts])
        self._label_len = np.concatenate([self._label_len, lengths])

    def _reserve(self, size: int) -> None:
        """Make the pool at least `size` bytes, keeping the labels (doubling: series arrive a
        few at a time too, and requests vary in size)."""
        if size > len(self._pool):
            grown = np.zeros(max(size, 2 * len(self._pool)), dtype=np.uint8)
            grown[: self._pool_used] = self._pool[: self._pool_used]
            self._pool = grown


def metric_name(metric: str) -> str:
    """`rackwatch_` + the metric; a character Prometheus refuses in a name becomes `_`.

    >>> metric_name("power_watts"), metric_name("temp.c-1")
    ('rackwatch_power_watts', 'rackwatch_temp_c_1')
    """
    return PREFIX + _METRIC_BAD_CHAR.sub("_", metric)


def path_parts(path: str) -> tuple[str, str, str, str]:
    """(cluster, rack, server, component) read from an entity path by position: `room/...` is
    the room's, `host/<name>/...` a real machine's (`<name>` is the server).

    >>> path_parts("c01/r01/s01/fan1"), path_parts("c01/r01/pdu")
    (('c01', 'r01', 's01', 'fan1'), ('c01', 'r01', 'pdu', ''))
    >>> path_parts("room/crac1"), path_parts("host/db1/gpu0"), path_parts("host/db1")
    (('', '', '', 'crac1'), ('', '', 'db1', 'gpu0'), ('', '', 'db1', ''))
    """
    segments = path.split("/")
    if segments[0] == "room":
        return ("", "", "", segments[-1] if len(segments) > 1 else "")
    if segments[0] == "host":
        server = segments[1] if len(segments) > 1 else ""
        return ("", "", server, segments[-1] if len(segments) > 2 else "")
    padded = [*segments[:3], "", "", ""][:3]
    component = segments[-1] if len(segments) > 3 else ""
    return (padded[0], padded[1], padded[2], component)


def _check_external_label(name: str, value: str) -> None:
    if not _NAME_OK.match(name) or name.startswith("__"):
        raise ValueError(
            f"external label {name!r}: a label name is letters, digits and _, "
            "not starting with a digit or __"
        )
    if name in RESERVED_LABELS:
        raise ValueError(f"external label {name!r} is set by rackwatch on every series")
    if not value or len(value.encode()) > _MAX_LABEL_BYTES:
        raise ValueError(f"external label {name!r} needs a value of 1 to {_MAX_LABEL_BYTES} bytes")


def _encode_labels(labels: list[tuple[str, str]], cache: dict[tuple[str, str], bytes]) -> bytes:
    """TimeSeries.labels fields (tag 0x0a each), in the order given. `cache` keeps each label's
    bytes: most (a metric name, a cluster, a rack, the site) are shared by many series."""
    out = []
    for label in labels:
        found = cache.get(label)
        if found is None:
            name_b, value_b = label[0].encode(), label[1].encode()
            if len(name_b) > _MAX_LABEL_BYTES or len(value_b) > _MAX_LABEL_BYTES:
                raise ValueError(
                    f"label {label[0]}={label[1][:80]!r}... is over {_MAX_LABEL_BYTES} bytes"
                )
            body = (
                b"\x0a" + _varint(len(name_b)) + name_b + b"\x12" + _varint(len(value_b)) + value_b
            )
            found = b"\x0a" + _varint(len(body)) + body
            if len(cache) < _LABEL_CACHE:
                cache[label] = found
        out.append(found)
    return b"".join(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_len(u: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Bytes of each value's varint (1 to 10)."""
    length = np.ones(len(u), dtype=np.int64)
    for shift in _VARINT_SHIFTS[1:]:
        length += (u >> shift) != 0
    return length


def _varint_rows(u: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """Each value's varint in a 10-byte row (the bytes past its length are garbage)."""
    groups = ((u[:, None] >> _VARINT_SHIFTS[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    more = (u[:, None] >> (_VARINT_SHIFTS[None, :] + np.uint64(7))) != 0
    more[:, -1] = False
    groups[more] |= 0x80
    return groups


def _sample_rows(
    ts: npt.NDArray[np.int64], bits: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Each sample as a TimeSeries.samples field in a 22-byte row, and its used length."""
    u_ts = ts.view(np.uint64)  # a negative int64 is a 10-byte varint, as protobuf writes it
    ts_len = _varint_len(u_ts)
    rows = np.empty((len(ts), _SAMPLE_ROW), dtype=np.uint8)
    rows[:, 0] = 0x12  # TimeSeries.samples, length-delimited
    rows[:, 1] = 10 + ts_len  # Sample size: 1 + 8 + 1 + varint
    rows[:, 2] = 0x09  # Sample.value, 64-bit
    rows[:, 3:11] = bits.astype("<u8").view(np.uint8).reshape(-1, 8)
    rows[:, 11] = 0x10  # Sample.timestamp, varint
    rows[:, 12:] = _varint_rows(u_ts)
    return rows, 12 + ts_len


def _ranges(start: npt.NDArray[np.int64], length: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The indices of the ranges [start, start + length) one after the other (int32 while
    they fit: half the memory traffic of the request's one gather).

    >>> _ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    total = int(length.sum())
    ends = np.cumsum(length)
    offset = start - (ends - length)
    small = total < _INT32_MAX and int(start.max(initial=0) + length.max(initial=0)) < _INT32_MAX
    kind = np.int32 if small else np.int64
    return np.repeat(offset.astype(kind), length) + np.arange(total, dtype=kind)
