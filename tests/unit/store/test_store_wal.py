"""Write-ahead log: records come back as written; a torn or corrupt tail ends the replay."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.errors import StoreError
from rackwatch.store.wal import (
    Record,
    WriteAheadLog,
    generations,
    read_records,
    wal_path,
)


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return (
        np.arange(n, dtype=np.int64) * 5000,
        rng.integers(0, 100, n).astype(np.int32),
        np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    )


def test_records_round_trip_including_nan_and_odd_lengths(tmp_path):
    log = WriteAheadLog(tmp_path, 1)
    written = [batch(n, seed=n) for n in (1, 7, 0, 1000)]
    for i, b in enumerate(written):
        log.append(i + 1, *b)
    log.close()
    got = list(read_records(wal_path(tmp_path, 1)))
    assert [r.seq for r in got] == [1, 2, 3, 4]
    for r, (ts, series, value) in zip(got, written, strict=True):
        assert r.flags == 0
        np.testing.assert_array_equal(r.ts, ts)
        np.testing.assert_array_equal(r.series, series)
        np.testing.assert_array_equal(r.value, value)  # NaN compare equal here


def test_appends_are_buffered_until_drained(tmp_path):
    log = WriteAheadLog(tmp_path, 1, sync_seconds=10)
    log.append(1, *batch(10))
    assert list(read_records(log.path)) == []  # still in memory
    log.drain()
    assert len(list(read_records(log.path))) == 1
    log.close()


def test_sync_seconds_zero_writes_through(tmp_path):
    log = WriteAheadLog(tmp_path, 1, sync_seconds=0)
    log.append(1, *batch(10))
    assert len(list(read_records(log.path))) == 1
    log.close()


def test_dropped_log_keeps_what_was_appended(tmp_path):
    log = WriteAheadLog(tmp_path, 1, sync_seconds=10)
    log.append(1, *batch(10))
    del log
    assert len(list(read_records(wal_path(tmp_path, 1)))) == 1


@pytest.mark.parametrize("cut", [1, 20, 100])
def test_torn_tail_is_ignored(tmp_path, cut):
    log = WriteAheadLog(tmp_path, 1, sync_seconds=0)
    log.append(1, *batch(10))
    log.append(2, *batch(10, seed=1))
    log.close()
    path = wal_path(tmp_path, 1)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    assert [r.seq for r in read_records(path)] == [1]


def test_corrupt_record_ends_the_replay(tmp_path):
    log = WriteAheadLog(tmp_path, 1, sync_seconds=0)
    for seq in (1, 2, 3):
        log.append(seq, *batch(10, seed=seq))
    log.close()
    path = wal_path(tmp_path, 1)
    data = bytearray(path.read_bytes())
    data[16 + 32 + 20 * 10 + 32 + 5] ^= 0xFF  # a byte of record 2's payload
    path.write_bytes(bytes(data))
    assert [r.seq for r in read_records(path)] == [1]


def test_not_a_log_is_refused(tmp_path):
    path = wal_path(tmp_path, 1)
    path.write_bytes(b"hello, this is not a log file")
    with pytest.raises(StoreError, match="not a rackwatch write-ahead log"):
        list(read_records(path))


def test_next_generation_holds_the_given_records(tmp_path):
    log = WriteAheadLog(tmp_path, 4)
    log.append(1, *batch(5))
    ts, series, value = batch(3)
    nxt = log.start_next([Record(9, 1, ts, series, value)])  # flags travel as they are
    assert nxt.gen == 5
    assert generations(tmp_path) == [4, 5]
    log.discard()
    nxt.append(10, *batch(2))
    nxt.close()
    assert generations(tmp_path) == [5]
    assert [(r.seq, r.flags) for r in read_records(nxt.path)] == [(9, 1), (10, 0)]
