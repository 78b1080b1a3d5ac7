"""The agent's disk buffer: in order, acknowledged once, bounded, and it survives a restart
and a torn last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackwatch.agent.buffer import DiskBuffer


def entry(ts_ms: int, n: int = 1) -> dict[str, object]:
    return {"ts_ms": ts_ms, "entities": {"host/a": {f"m{i}": float(i) for i in range(n)}}}


def test_collections_come_back_in_order_until_acknowledged(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path)
    assert buffer.pending(10, 1000) is None and buffer.n_pending == 0
    seqs = [buffer.append(entry(t)) for t in (0, 5000, 10000)]
    assert seqs == [0, 1, 2] and buffer.n_pending == 3
    first = buffer.pending(2, 1000)
    assert first is not None and [e["ts_ms"] for e in first.entries] == [0, 5000]
    buffer.ack(first.last_seq)
    rest = buffer.pending(10, 1000)
    assert rest is not None and [e["ts_ms"] for e in rest.entries] == [10000]
    buffer.ack(rest.last_seq)
    assert buffer.pending(10, 1000) is None and buffer.n_pending == 0


def test_a_chunk_holds_at_most_max_readings_but_always_one_collection(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path)
    for t in range(3):
        buffer.append(entry(t, n=40))
    chunk = buffer.pending(10, 100)
    assert chunk is not None and len(chunk.entries) == 2  # 80 readings; a third would be 120
    alone = DiskBuffer(tmp_path / "b")
    alone.append(entry(0, n=500))
    big = alone.pending(10, 100)
    assert big is not None and len(big.entries) == 1  # larger than the bound, still sent


def test_what_was_not_acknowledged_is_there_after_a_restart_and_numbers_go_on(
    tmp_path: Path,
) -> None:
    buffer = DiskBuffer(tmp_path)
    for t in range(5):
        buffer.append(entry(t))
    buffer.ack(1)
    again = DiskBuffer(tmp_path)  # the agent was stopped (or killed) and started again
    pending = again.pending(10, 1000)
    assert pending is not None and [e["seq"] for e in pending.entries] == [2, 3, 4]
    assert again.append(entry(99)) == 5


def test_a_line_torn_by_a_crash_is_skipped_and_counted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path)
    buffer.append(entry(0))
    segment = next(tmp_path.glob("*.jsonl"))
    with segment.open("a") as out:
        out.write('{"seq": 1, "ts_ms": 5000, "entit')  # the write a kill cut short
    again = DiskBuffer(tmp_path)
    assert again.append(entry(10000)) == 1  # the torn line's number is taken again
    pending = again.pending(10, 1000)
    assert pending is not None and [e["ts_ms"] for e in pending.entries] == [0, 10000]
    assert again.n_corrupt >= 1


def test_the_buffer_is_bounded_and_drops_the_oldest_counting_them(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=8 * 1024, segment_bytes=2 * 1024)
    for t in range(400):
        buffer.append(entry(t * 5000, n=3))
    total = sum(p.stat().st_size for p in tmp_path.glob("*.jsonl"))
    assert total <= 8 * 1024 + 2 * 1024  # the bound, give or take the newest segment
    assert buffer.n_dropped > 0
    pending = buffer.pending(1000, 100_000)
    assert pending is not None
    kept = [e["seq"] for e in pending.entries]
    assert kept == list(range(kept[0], 400))  # the newest, contiguous, in order
    assert buffer.n_dropped + len(kept) == 400 and buffer.n_pending == len(kept)


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=1 << 20, segment_bytes=1024)
    for t in range(100):
        buffer.append(entry(t))
    assert len(list(tmp_path.glob("*.jsonl"))) > 3
    buffer.ack(99)
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # the one being written stays


def test_a_bound_that_cannot_work_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment"):
        DiskBuffer(tmp_path, max_bytes=1024, segment_bytes=1024)
