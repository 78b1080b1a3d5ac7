import asyncio

import pytest

from rackwatch.bus import MemoryBus
from rackwatch.bus.queue import DropOldestQueue
from rackwatch.bus.subjects import subject_matches


def test_subject_wildcards() -> None:
    assert subject_matches("telemetry.twin", "telemetry.*")
    assert subject_matches("telemetry.twin.x", "telemetry.>")
    assert not subject_matches("telemetry", "telemetry.>")
    assert not subject_matches("telemetry.twin.x", "telemetry.*")


def test_subscriber_receives_matching_messages_in_order() -> None:
    async def scenario() -> list[tuple[str, object]]:
        bus = MemoryBus()
        got: list[tuple[str, object]] = []
        async with bus.subscribe("events.>") as sub:
            await bus.publish("events.a", 1)
            await bus.publish("telemetry.x", 2)
            await bus.publish("events.b", 3)
            bus.close()
            async for item in sub:
                got.append(item)
        return got

    assert asyncio.run(scenario()) == [("events.a", 1), ("events.b", 3)]


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
