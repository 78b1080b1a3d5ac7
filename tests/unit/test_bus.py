import asyncio

import numpy as np
import pytest

from rackwatch.bus import MemoryBus
from rackwatch.bus.codec import CodecError, decode, encode, encode_parts
from rackwatch.bus.queue import DropOldestQueue
from rackwatch.bus.subjects import subject_matches
from rackwatch.model import Batch, Event


def test_subject_wildcards() -> None:
    assert subject_matches("telemetry.twin", "telemetry.*")
    assert subject_matches("telemetry.twin.x", "telemetry.>")
    assert not subject_matches("telemetry", "telemetry.>")
    assert not subject_matches("telemetry.twin.x", "telemetry.*")


def test_slow_subscriber_drops_oldest_and_counts() -> None:
    async def scenario() -> tuple[list[object], int]:
        bus = MemoryBus()
        async with bus.subscribe("x", max_pending=3) as sub:
            for i in range(5):
                await bus.publish("x", i)
            bus.close()
            return [m async for _, m in sub], sub.dropped

    messages, dropped = asyncio.run(scenario())
    assert messages == [2, 3, 4] and dropped == 2


def test_drop_oldest_queue_bounds_counts_and_ends_when_closed() -> None:
    async def scenario() -> None:
        queue: DropOldestQueue[int] = DropOldestQueue(2)
        assert [queue.put(i) for i in range(4)] == [False, False, True, True]
        assert list(queue) == [2, 3] and queue.dropped == 2
        assert await queue.get() == 2
        queue.put_back(2)  # a failed send goes back to the head
        assert queue.clear() == [2, 3] and len(queue) == 0
        assert await queue.get(timeout_s=0.01) is None  # nothing came in time
        queue.put(7)
        queue.close()
        assert await queue.get() == 7  # what is left is still taken after close
        assert await queue.get() is None

    asyncio.run(scenario())


def test_drop_oldest_queue_wakes_a_waiting_consumer() -> None:
    async def scenario() -> int | None:
        queue: DropOldestQueue[int] = DropOldestQueue(1)
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.put(5)
        return await asyncio.wait_for(waiter, 1)

    assert asyncio.run(scenario()) == 5
    with pytest.raises(ValueError, match="at least one"):
        DropOldestQueue(0)


# Publish/subscribe behaviour every bus shares is in tests/contract/test_bus_contract.py.


def test_codec_keeps_batch_columns_bit_for_bit() -> None:
    batch = Batch.of([-1, 2**62], [0, 2**31 - 1], [np.nan, np.inf])
    got = decode(encode(batch))
    assert isinstance(got, Batch)
    assert got.ts.tolist() == [-1, 2**62] and got.series.tolist() == [0, 2**31 - 1]
    assert got.value.tobytes() == batch.value.tobytes()  # the NaN's bits too
    assert got.value.flags.writeable  # a copy, not a view of the payload
    empty = decode(encode(Batch.empty()))
    assert isinstance(empty, Batch) and len(empty) == 0


def test_codec_writes_numpy_attributes_as_plain_values() -> None:
    ev = Event(1, "anomaly.started", "c01", attributes={"z": np.float64(2.5), "v": np.arange(2)})
    got = decode(encode(ev))
    assert isinstance(got, Event) and got.attributes == {"z": 2.5, "v": [0, 1]}


def test_codec_refuses_unknown_messages_and_payloads() -> None:
    with pytest.raises(TypeError, match="Batch, Event or Command, not int"):
        encode(42)
    good = encode(Batch.of([1], [2], [3.0]))
    for payload in (
        b"",
        b"XXXX{}",  # a foreign tag
        good[:-1],  # truncated
        good + b"\0",  # trailing bytes
        b"RWE1{not json",
        b'RWE1{"ts": 1}',  # fields missing
        b'RWE1{"ts":1,"kind":"k","entity":"e","severity":9,"attributes":{},"end_ts":null}',
        b'RWC1{"target":"t","action":"a","params":[],"issued_by":"x","ts":null}',
        b'RWC1{"target":"t","action":"a","params":{},"issued_by":"x","ts":1.5}',
        b"RWC1[]",
        b'RWC1{"target":"t","action":"a","params":{},"issued_by":"x","ts":9223372036854775808}',
        b"RWE1" + b"[" * 100_000,  # nested past the interpreter's stack
    ):
        with pytest.raises(CodecError):
            decode(payload)


def test_codec_splits_a_batch_too_big_for_one_payload() -> None:
    batch = Batch.of(np.arange(1000), np.arange(1000) % 7, np.linspace(0, 1, 1000))
    parts = encode_parts(batch, 4096)
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    got = Batch.concat([b for b in map(decode, parts) if isinstance(b, Batch)])
    assert got.ts.tolist() == batch.ts.tolist() and got.value.tolist() == batch.value.tolist()
    assert encode_parts(batch, 10**6) == [encode(batch)]
    with pytest.raises(CodecError, match="Event of"):
        encode_parts(Event(1, "k", "e", attributes={"big": "x" * 100}), 64)
