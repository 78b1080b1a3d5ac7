"""The Bus contract: what every bus must do, run over the in-memory bus and NATS JetStream.

The NATS runs need the server on 127.0.0.1:4222 (JetStream on); each test gets its own prefix,
hence its own streams and subjects, and deletes its streams at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest

from rackwatch.bus import MemoryBus
from rackwatch.model import Batch, Command, Event, Severity

NATS_URL = "nats://127.0.0.1:4222"
WAIT_S = 10.0  # a hang guard only: every wait ends as soon as its message is there


def _nats_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 4222), 1):
        return True
    return False


class Buses:
    """Opens buses of one kind inside the test's event loop, and closes them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.opened: list[Any] = []

    async def open(self, **options: Any) -> Any:
        if self.kind == "memory":
            bus: Any = MemoryBus()
        else:
            from rackwatch.bus.nats import NatsBus

            bus = NatsBus(prefix=self.prefix, **options)
            await bus.connect(NATS_URL)
        self.opened.append(bus)
        return bus

    async def close_all(self) -> None:
        for bus in self.opened:
            result = bus.close()
            if result is not None:
                await result
        if self.kind == "nats":
            await self._delete_streams()

    async def _delete_streams(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        from rackwatch.bus.nats import NatsBus

        nc = await nats.connect(NATS_URL)
        try:
            for name in NatsBus(prefix=self.prefix).stream_names.values():
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(name)
        finally:
            await nc.close()

    def run(self, scenario: Callable[[Buses], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            try:
                return await scenario(self)
            finally:
                await self.close_all()

        return asyncio.run(main())


def _buses(kind: str) -> Iterator[Buses]:
    if kind == "nats":
        pytest.importorskip("nats", reason="nats-py is not installed (the `nats` extra)")
        if not _nats_answers():
            pytest.skip("no NATS server answers on 127.0.0.1:4222 (run nats-server -js)")
    yield Buses(kind)


@pytest.fixture(params=["memory", "nats"])
def buses(request: pytest.FixtureRequest) -> Iterator[Buses]:
    yield from _buses(request.param)


@pytest.fixture
def nats_buses() -> Iterator[Buses]:
    yield from _buses("nats")


async def take(it: AsyncIterator[tuple[str, Any]], n: int) -> list[tuple[str, Any]]:
    return [await asyncio.wait_for(anext(it), WAIT_S) for _ in range(n)]


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a condition that the bus makes true by itself (a NATS delivery is async)."""
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.005)


async def until_async(ask: Callable[[], Awaitable[Any]], condition: Callable[[Any], bool]) -> None:
    """Ask again until the answer meets the condition (the server applies acks by itself)."""
    async with asyncio.timeout(WAIT_S):
        while not condition(await ask()):
            await asyncio.sleep(0.005)


def event(i: int, subject_kind: str = "fault.injected") -> Event:
    return Event(ts=1_000 + i, kind=subject_kind, entity="c01/r01/s01", attributes={"i": i})


def test_batch_event_and_command_round_trip_equal(buses: Buses) -> None:
    batch = Batch.of([0, 0, 5_000], [7, 9, 7], [1.5, np.nan, -0.0])
    ev = Event(
        ts=1_700_000_000_123,
        kind="alert.fired",
        entity="c01/r01/s01",
        severity=Severity.CRITICAL,
        attributes={"rule": "cpu_hot", "value": 91.5, "tags": ["a", "b"], "nested": {"x": 1}},
        end_ts=1_700_000_060_000,
    )
    cmd = Command("c01/r01/s01/fan1", "fan.set_level", {"level": 3}, issued_by="ctl", ts=42)

    async def scenario(b: Buses) -> list[tuple[str, Any]]:
        bus = await b.open()
        async with (
            bus.subscribe("telemetry.>") as tel,
            bus.subscribe("events.>") as evs,
            bus.subscribe("commands.>") as cmds,
        ):
            await bus.publish("telemetry.twin", batch)
            await bus.publish("events.alert", ev)
            await bus.publish("commands.twin", cmd)
            return [
                *await take(aiter(tel), 1),
                *await take(aiter(evs), 1),
                *await take(aiter(cmds), 1),
            ]

    (tel_subject, got_batch), evs_item, cmds_item = buses.run(scenario)
    assert tel_subject == "telemetry.twin"
    for column in ("ts", "series", "value"):
        np.testing.assert_array_equal(getattr(got_batch, column), getattr(batch, column))
        assert getattr(got_batch, column).dtype == getattr(batch, column).dtype
    assert np.isnan(got_batch.value[1]) and np.signbit(got_batch.value[2])
    assert evs_item == ("events.alert", ev)
    assert cmds_item == ("commands.twin", cmd)


def test_a_large_batch_arrives_whole_in_order(buses: Buses) -> None:
    rows = 200_000  # 4 MB encoded: over NATS's default 1 MB max payload
    batch = Batch.of(np.arange(rows), np.arange(rows) % 1000, np.arange(rows) / 3)

    async def scenario(b: Buses) -> Batch:
        bus = await b.open()
        async with bus.subscribe("telemetry.twin") as sub:
            await bus.publish("telemetry.twin", batch)
            got: list[Batch] = []
            it = aiter(sub)
            while sum(map(len, got)) < rows:
                got += [m for _, m in await take(it, 1)]
            return Batch.concat(got)

    got = buses.run(scenario)
    np.testing.assert_array_equal(got.ts, batch.ts)
    np.testing.assert_array_equal(got.series, batch.series)
    np.testing.assert_array_equal(got.value, batch.value)


def test_patterns_match_one_token_or_the_rest(buses: Buses) -> None:
    async def scenario(b: Buses) -> tuple[list[str], list[str]]:
        bus = await b.open()
        async with bus.subscribe("events.alert.*") as one, bus.subscribe("events.>") as rest:
            for subject in ("events.alert.fired", "events.alert.x.y", "events.fault"):
                await bus.publish(subject, event(0))
            await bus.publish("events.alert.end", event(1))  # the last, matched by both
            got_one = [s for s, _ in await take(aiter(one), 2)]
            got_rest = [s for s, _ in await take(aiter(rest), 4)]
            return got_one, got_rest

    got_one, got_rest = buses.run(scenario)
    # The sentinel arriving second proves x.y and fault were not delivered to `one`.
    assert got_one == ["events.alert.fired", "events.alert.end"]
    assert got_rest == [
        "events.alert.fired",
        "events.alert.x.y",
        "events.fault",
        "events.alert.end",
    ]


def test_every_subscriber_gets_every_message_in_order(buses: Buses) -> None:
    sent = [event(i) for i in range(20)]

    async def scenario(b: Buses) -> list[list[tuple[str, Any]]]:
        bus = await b.open()
        async with bus.subscribe("events.>") as first, bus.subscribe("events.fault") as second:
            for ev in sent:
                await bus.publish("events.fault", ev)
            return [await take(aiter(first), 20), await take(aiter(second), 20)]

    for got in buses.run(scenario):
        assert got == [("events.fault", ev) for ev in sent]


def test_pending_counts_what_is_queued_and_unread(buses: Buses) -> None:
    async def scenario(b: Buses) -> list[int]:
        bus = await b.open()
        async with bus.subscribe("commands.twin") as sub:
            seen = [sub.pending]
            for i in range(3):
                await bus.publish("commands.twin", Command(f"c01/r01/s0{i}", "fan.set_mode"))
            await until(lambda: sub.pending == 3)
            it = aiter(sub)
            await take(it, 1)
            seen.append(sub.pending)
            await take(it, 2)
            seen.append(sub.pending)
            return [*seen, sub.dropped]

    assert buses.run(scenario) == [0, 2, 0, 0]


def test_close_ends_iteration_after_what_is_queued(buses: Buses) -> None:
    async def scenario(b: Buses) -> list[Any]:
        bus = await b.open()
        async with bus.subscribe("events.>") as sub:
            for i in range(2):
                await bus.publish("events.fault", event(i))
            await until(lambda: sub.pending == 2)
            closing = bus.close()
            if closing is not None:  # NatsBus.close is a coroutine, MemoryBus.close is not
                await closing
            return [m.attributes["i"] async for _, m in sub]

    assert buses.run(scenario) == [0, 1]


# --- NATS only: durability, retention, foreign payloads ------------------------------------


def test_nats_durable_consumer_gets_the_unacked_message_again(nats_buses: Buses) -> None:
    async def scenario(b: Buses) -> tuple[list[Any], list[Any]]:
        worker = await b.open()
        async with worker.subscribe("commands.>", durable="worker") as sub:
            for i in range(3):
                await worker.publish("commands.twin", Command("t", "fan.set_level", {"i": i}))
            it = aiter(sub)
            # The first is acked when the second is asked for; the second is never acked.
            first = [m.params["i"] for _, m in await take(it, 2)]
            stream = worker.stream_names["commands"]
            info = worker.jetstream.consumer_info
            await until_async(lambda: info(stream, "worker"), lambda i: i.ack_floor.stream_seq == 1)
        await worker.close()
        again = await b.open()  # a restarted worker, same durable name
        async with again.subscribe("commands.>", durable="worker") as sub:
            second = [m.params["i"] for _, m in await take(aiter(sub), 2)]
        return first, second

    first, second = nats_buses.run(scenario)
    assert first == [0, 1]
    assert second == [1, 2]  # 1 redelivered, 0 (acked) not


def test_nats_message_held_past_ack_wait_comes_again(nats_buses: Buses) -> None:
    async def scenario(b: Buses) -> tuple[Any, Any]:
        bus = await b.open(ack_wait_s=0.5)
        async with bus.subscribe("commands.>", durable="slow") as sub:
            await bus.publish("commands.twin", Command("t", "fan.set_level", {"i": 0}))
            it = aiter(sub)
            (_, held), *_ = await take(it, 1)
            await until(lambda: sub.pending == 1)  # held, never acked: the server sends it again
            (_, again), *_ = await take(it, 1)
            return held, again

    held, again = nats_buses.run(scenario)
    assert held == again == Command("t", "fan.set_level", {"i": 0})


def test_nats_streams_keep_a_bounded_history(nats_buses: Buses) -> None:
    from rackwatch.bus.nats import Retention

    async def scenario(b: Buses) -> list[int]:
        bus = await b.open(retention=Retention(max_msgs=3))
        for i in range(5):
            await bus.publish("events.fault", event(i))
        async with bus.subscribe("events.>", replay=True) as sub:
            got = [m.attributes["i"] for _, m in await take(aiter(sub), 3)]
            await bus.publish("events.fault", event(99))
            got += [m.attributes["i"] for _, m in await take(aiter(sub), 1)]
            return got

    assert nats_buses.run(scenario) == [2, 3, 4, 99]  # 0 and 1 are gone


def test_nats_malformed_payload_is_counted_and_skipped(nats_buses: Buses) -> None:
    async def scenario(b: Buses) -> tuple[list[Any], int]:
        bus = await b.open()
        async with bus.subscribe("events.>") as sub:
            raw = bus.jetstream  # a foreign publisher on the same subjects
            await raw.publish(bus.wire_subject("events.fault"), b"not a rackwatch message")
            await raw.publish(bus.wire_subject("events.fault"), b"RWB1\x05")  # truncated Batch
            await bus.publish("events.fault", event(7))
            got = [m for _, m in await take(aiter(sub), 1)]
            return got, sub.rejected

    got, rejected = nats_buses.run(scenario)
    assert got == [event(7)] and rejected == 2


def test_nats_bus_refuses_subjects_outside_the_families(nats_buses: Buses) -> None:
    async def scenario(b: Buses) -> None:
        bus = await b.open()
        with pytest.raises(ValueError, match="starts with one of"):
            await bus.publish("other.x", event(0))
        with pytest.raises(ValueError, match="starts with one of"):
            async with bus.subscribe(">"):
                pass
        with pytest.raises(TypeError, match="Batch, Event or Command"):
            await bus.publish("events.x", 42)

    nats_buses.run(scenario)
