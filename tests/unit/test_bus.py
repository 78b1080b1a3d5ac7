import asyncio

from rackwatch.bus import MemoryBus
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
