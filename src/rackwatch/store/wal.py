"""Write-ahead log of the in-memory head: columnar records appended to one file per generation.

Each `write()` becomes one record. Records are buffered and written with `writev` once 1 MiB
waits; the store syncs (writes and fsyncs) every `sync_seconds` from a background thread, on
flush and on close, so a crash, of the process or of the machine, loses at most that window
(`sync_seconds=0` writes and fsyncs every record before returning). When the head is
flushed to the database, the next generation's file (empty, or holding the records the owner
hands over) is renamed into place before the database commit that names it; the older file is
then removed.

File: 16-byte header (magic, generation), then records. Record: 32-byte header (magic, flags,
seq, n rows, crc32 of the payload, 0), then ts (n x int64), value (n x float64), series
(n x int32), zero-padded to 8 bytes so that every column stays aligned when read back.
A torn or corrupt record ends the replay: it and anything after it were never acknowledged.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.errors import StoreError

_FILE_MAGIC = b"RWWAL001"
_FILE_HEADER = struct.Struct("<8sQ")
_RECORD = struct.Struct("<IIQQII")
_RECORD_MAGIC = 0x52574231  # "RWB1"


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    flags: int
    ts: npt.NDArray[np.int64]
    series: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]


def wal_path(directory: Path, gen: int) -> Path:
    return directory / f"{gen:012d}.wal"


_PAD = b"\0" * 4
_IOV_MAX = 1024  # buffers per writev (Linux limit)
_BUFFER_BYTES = 1 << 20


def _record_parts(
    seq: int,
    flags: int,
    ts: npt.NDArray[np.int64],
    series: npt.NDArray[np.int32],
    value: npt.NDArray[np.float64],
) -> list[Any]:
    bufs = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in (ts, value, series)]
    crc = zlib.crc32(bufs[2].data, zlib.crc32(bufs[1].data, zlib.crc32(bufs[0].data)))
    header = _RECORD.pack(_RECORD_MAGIC, flags, seq, len(ts), crc, 0)
    return [header, *bufs, _PAD] if len(ts) % 2 else [header, *bufs]


def _record_sizes(n: int) -> list[int]:
    """Bytes of each part `_record_parts` gives for n rows."""
    return [_RECORD.size, 8 * n, 8 * n, 4 * n, 4] if n % 2 else [_RECORD.size, 8 * n, 8 * n, 4 * n]


def _write_all(fd: int, parts: list[Any], sizes: list[int]) -> None:
    """Write every buffer (of `sizes` bytes), in order, with as few `writev` calls as the
    kernel allows."""
    i = 0
    while i < len(parts):
        group = parts[i : i + _IOV_MAX]
        written = os.writev(fd, group)
        total = sum(sizes[i : i + _IOV_MAX])
        if written < total:  # short write (rare: a signal, a full disk): finish byte-wise
            rest = b"".join(memoryview(p).cast("B") for p in group)[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]
        i += _IOV_MAX


class WriteAheadLog:
    """The open log file of generation `gen`.

    Records are buffered in memory (the arrays themselves, not copies) and written out when
    1 MiB is waiting, on `drain()`/`sync()` and on close; `sync()` also fsyncs. With
    `sync_seconds == 0` every append is written and fsynced at once. The owner calls `sync()`
    every `sync_seconds`, so a crash loses at most that window.
    """

    def __init__(self, directory: Path, gen: int, *, sync_seconds: float = 1.0) -> None:
        self.directory = directory
        self.gen = gen
        self.sync_seconds = sync_seconds
        path = wal_path(directory, gen)
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if not existed or os.fstat(self._fd).st_size == 0:
            os.write(self._fd, _FILE_HEADER.pack(_FILE_MAGIC, gen))
            self._fsync_dir()
        self._buffer: list[Any] = []
        self._sizes: list[int] = []
        self._buffered = 0
        self._dirty = False

    @property
    def path(self) -> Path:
        return wal_path(self.directory, self.gen)

    def append(
        self,
        seq: int,
        ts: npt.NDArray[np.int64],
        series: npt.NDArray[np.int32],
        value: npt.NDArray[np.float64],
        flags: int = 0,
    ) -> None:
        self._buffer += _record_parts(seq, flags, ts, series, value)
        self._sizes += _record_sizes(len(ts))
        self._buffered += _RECORD.size + 20 * len(ts)
        if self.sync_seconds <= 0:
            self.sync()
        elif self._buffered >= _BUFFER_BYTES:
            self.drain()

    def drain(self) -> None:
        """Hand the buffered records to the kernel (safe from a crash of this process)."""
        if self._buffer:
            _write_all(self._fd, self._buffer, self._sizes)
            self._buffer, self._sizes, self._buffered, self._dirty = [], [], 0, True

    def sync(self) -> None:
        """Drain and fsync (safe from a crash of the machine)."""
        self.drain()
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Close and delete this file: a newer generation holds what is still needed."""
        self._buffer, self._sizes, self._buffered = [], [], 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)

    def __del__(self) -> None:
        # An owner dropped without close() (e.g. a crashed thread): keep what was appended.
        if getattr(self, "_fd", -1) >= 0:
            try:
                self.drain()
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def start_next(self, records: list[Record]) -> WriteAheadLog:
        """Write generation gen+1 holding `records`, durably, and open it for appends.

        This file is not in use until the database commit that records the new generation;
        the caller removes this (older) file after that commit.
        """
        new_gen = self.gen + 1
        final = wal_path(self.directory, new_gen)
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            parts: list[Any] = [_FILE_HEADER.pack(_FILE_MAGIC, new_gen)]
            sizes = [_FILE_HEADER.size]
            for r in records:
                parts += _record_parts(r.seq, r.flags, r.ts, r.series, r.value)
                sizes += _record_sizes(len(r.ts))
            _write_all(fd, parts, sizes)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._fsync_dir()
        return WriteAheadLog(self.directory, new_gen, sync_seconds=self.sync_seconds)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_records(path: Path) -> Iterator[Record]:
    """Records of a log file, in order, up to the first torn or corrupt one."""
    data = np.fromfile(path, dtype=np.uint8)  # an aligned buffer: columns are views into it
    if len(data) < _FILE_HEADER.size:
        return
    magic, _gen = _FILE_HEADER.unpack_from(data.data, 0)
    if magic != _FILE_MAGIC:
        raise StoreError(f"{path} is not a rackwatch write-ahead log; move it out of the way")
    pos = _FILE_HEADER.size
    while pos + _RECORD.size <= len(data):
        rmagic, flags, seq, n, crc, _ = _RECORD.unpack_from(data.data, pos)
        start = pos + _RECORD.size
        end = start + 20 * n
        if rmagic != _RECORD_MAGIC or end > len(data):
            return
        ts_b = data[start : start + 8 * n]
        value_b = data[start + 8 * n : start + 16 * n]
        series_b = data[start + 16 * n : end]
        if zlib.crc32(series_b.data, zlib.crc32(value_b.data, zlib.crc32(ts_b.data))) != crc:
            return
        yield Record(
            seq, flags, ts_b.view(np.int64), series_b.view(np.int32), value_b.view(np.float64)
        )
        pos = end + 4 * (n % 2)


def generations(directory: Path) -> list[int]:
    """Generations of the log files present in `directory`, ascending."""
    out = []
    for p in directory.glob("*.wal"):
        try:
            out.append(int(p.stem))
        except ValueError:
            continue
    return sorted(out)
