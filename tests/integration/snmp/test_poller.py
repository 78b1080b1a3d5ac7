"""The poller against the real SNMP agent: batches and events on a MemoryBus, machines summed
from their outlets, failures isolated per PDU and per outlet, and the UNKNOWN state of a PDU
that stopped answering while the others go on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from rackwatch.bus import MemoryBus
from rackwatch.engine.states import DeviceState, DeviceStates
from rackwatch.model import Batch, Event, EventKind, SeriesRegistry
from rackwatch.sources.snmp.poller import PduPoller, PduTarget
from rackwatch.sources.snmp.profiles import load_profile

from .conftest import Agent

pytestmark = pytest.mark.integration


def targets(agent: Agent) -> list[PduTarget]:
    return [
        PduTarget(
            "pdu/apc",
            agent.target("apc-rpdu2"),
            load_profile("apc-rpdu2"),
            # web1 is dual-corded (outlets 1 and 2); a path names a twin-style server
            machines={1: "host/web1", 2: "host/web1", 4: "host/gpu1", 5: "c01/r01/s01"},
        ),
        PduTarget("pdu/raritan", agent.target("raritan-px"), load_profile("raritan-px")),
        PduTarget("pdu/broken", agent.target("broken"), load_profile("apc-rpdu2")),
        PduTarget(
            "pdu/dead",
            agent.target("wrong-community", timeout_s=0.5, retries=0),
            load_profile("apc-rpdu2"),
        ),
    ]


class Recorder:
    """Polls on a MemoryBus and keeps what was published."""

    def __init__(self, poller: PduPoller, bus: MemoryBus) -> None:
        self.poller = poller
        self.bus = bus
        self.batches: list[Batch] = []
        self.events: list[Event] = []

    async def rounds(self, n: int, between: Any = None) -> None:
        async with (
            self.bus.subscribe("telemetry.>") as telemetry,
            self.bus.subscribe("events.>") as events,
        ):
            for i in range(n):
                if i and between is not None:
                    between(i)
                await self.poller.poll_all()
            self.bus.close()
            self.batches += [message async for _, message in telemetry]
            self.events += [message async for _, message in events]
        self.poller.close()


def values(registry: SeriesRegistry, batches: Sequence[Batch]) -> dict[tuple[str, str], float]:
    found = {}
    for batch in batches:
        for series, value in zip(batch.series.tolist(), batch.value.tolist(), strict=True):
            key = registry.key(series)
            found[(key.entity, key.metric)] = value
    return found


def test_one_round_publishes_outlets_totals_and_machines(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    poller = PduPoller(targets(agent), registry, bus)
    recorder = Recorder(poller, bus)
    asyncio.run(recorder.rounds(1))

    assert len(recorder.batches) == 3  # one per PDU that answered, none for the dead one
    got = values(registry, recorder.batches)
    assert got[("pdu/apc/outlet01", "outlet_power_watts")] == 120.0
    assert got[("pdu/apc/outlet04", "outlet_current_amperes")] == 2.2
    assert got[("pdu/apc/outlet06", "outlet_on")] == 0.0
    assert got[("pdu/apc/outlet05", "outlet_on")] == 1.0
    assert got[("pdu/apc", "pdu_power_watts")] == 990.0
    assert got[("pdu/raritan", "pdu_power_watts")] == 612.0
    assert got[("pdu/raritan/outlet02", "outlet_power_watts")] == 310.0
    # the machines: a dual-corded one is the sum of its two outlets
    assert got[("host/web1", "power_watts")] == 120.0 + 135.0
    assert got[("host/gpu1", "power_watts")] == 480.0
    assert got[("c01/r01/s01", "power_watts")] == 250.0
    # the broken PDU: its good values only, never a bad one
    assert got[("pdu/broken/outlet01", "outlet_power_watts")] == 100.0
    assert ("pdu/broken/outlet03", "outlet_power_watts") not in got
    assert ("pdu/broken", "pdu_power_watts") not in got
    assert not any(entity.startswith("pdu/dead") for entity, _ in got)
    # every batch stamped with its read's instant, one instant per batch
    assert all(len(set(b.ts.tolist())) == 1 for b in recorder.batches)


def test_failures_are_reported_once_and_counted(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    poller = PduPoller(targets(agent), registry, bus)
    recorder = Recorder(poller, bus)
    asyncio.run(recorder.rounds(2))

    unavailable = {
        e.entity: e.attributes["reason"]
        for e in recorder.events
        if e.kind == EventKind.SOURCE_UNAVAILABLE
    }
    assert set(unavailable) == {
        "pdu/dead",
        "pdu/broken",
        "pdu/broken/outlet02",
        "pdu/broken/outlet03",
        "pdu/broken/outlet04",
        "pdu/broken/outlet05",
    }
    assert "did not answer within 0.5 s" in unavailable["pdu/dead"]
    assert "community" in unavailable["pdu/dead"]
    assert "wrong-community" not in unavailable["pdu/dead"]  # the secret is never shown
    assert unavailable["pdu/broken/outlet03"] == "power: not a number: 'n/a'"
    assert unavailable["pdu/broken"].startswith("total: out of range")
    # two rounds, but each problem reported once per spell
    assert len([e for e in recorder.events if e.kind == EventKind.SOURCE_UNAVAILABLE]) == 6
    status = poller.status
    assert (status["pdu/dead"].n_failed, status["pdu/dead"].n_ok) == (2, 0)
    assert (status["pdu/apc"].n_ok, status["pdu/apc"].n_failed) == (2, 0)
    assert status["pdu/broken"].n_bad_values == 2 * 5
    assert poller.n_published == sum(len(b) for b in recorder.batches)


def test_a_pdu_that_answers_again_is_recovered(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    poller = PduPoller(targets(agent), registry, bus)

    def fix_the_dead_pdu(_round: int) -> None:
        dead = poller.targets[3]
        poller.targets[3] = dataclasses.replace(dead, snmp=agent.target("apc-rpdu2"))

    recorder = Recorder(poller, bus)
    asyncio.run(recorder.rounds(2, between=fix_the_dead_pdu))
    kinds = [(e.kind, e.entity) for e in recorder.events if e.entity == "pdu/dead"]
    assert kinds == [
        (EventKind.SOURCE_UNAVAILABLE, "pdu/dead"),
        (EventKind.SOURCE_RECOVERED, "pdu/dead"),
    ]
    assert poller.status["pdu/dead"].last_error is None
    assert values(registry, recorder.batches)[("pdu/dead", "pdu_power_watts")] == 990.0


def test_a_silent_pdu_turns_unknown_while_the_others_stay_ok(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    now = [1_000_000.0]
    poller = PduPoller(targets(agent)[:2], registry, bus, clock=lambda: now[0])

    def apc_goes_silent(_round: int) -> None:
        now[0] += 90  # past the real machines' 60 s silence timeout
        apc = poller.targets[0]
        poller.targets[0] = dataclasses.replace(
            apc, snmp=agent.target("wrong-community", timeout_s=0.5, retries=0)
        )

    recorder = Recorder(poller, bus)
    asyncio.run(recorder.rounds(2, between=apc_goes_silent))
    states = DeviceStates(registry, unknown_after_s_of={"snmp": 60.0})
    for batch in recorder.batches:
        states.observe(batch, source="snmp")
    seen = states.states()
    assert seen["pdu/apc"] == DeviceState.UNKNOWN
    assert seen["pdu/apc/outlet01"] == DeviceState.UNKNOWN
    assert seen["host/web1"] == DeviceState.UNKNOWN  # its power came from the silent PDU
    assert seen["pdu/raritan"] == DeviceState.OK
    assert seen["pdu/raritan/outlet01"] == DeviceState.OK


def test_machine_sum_needs_every_outlet(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    # outlet 2 of the broken PDU has no power: its machine gets no (half) sum
    broken = PduTarget(
        "pdu/broken",
        agent.target("broken"),
        load_profile("apc-rpdu2"),
        machines={1: "host/half", 2: "host/half", 5: "host/whole"},
    )
    recorder = Recorder(PduPoller([broken], registry, bus), bus)
    asyncio.run(recorder.rounds(1))
    got = values(registry, recorder.batches)
    assert ("host/half", "power_watts") not in got
    assert got[("host/whole", "power_watts")] == 100.0


def test_inventory_lists_pdus_and_outlets(agent: Agent) -> None:
    registry, bus = SeriesRegistry(), MemoryBus()
    poller = PduPoller(targets(agent)[:1], registry, bus)
    asyncio.run(Recorder(poller, bus).rounds(1))
    items = {item["entity"]: item for item in poller.inventory()}
    assert items["pdu/apc"]["kind"] == "pdu"
    assert items["pdu/apc"]["n_outlets"] == 6
    assert (items["pdu/apc"]["host"], items["pdu/apc"]["port"]) == (agent.host, agent.port)
    assert "community" not in str(items["pdu/apc"])
    assert items["pdu/apc/outlet02"] == {
        "entity": "pdu/apc/outlet02",
        "kind": "outlet",
        "pdu": "pdu/apc",
        "number": 2,
        "name": "web1-psu2",
        "machine": "host/web1",
    }
    assert "machine" not in items["pdu/apc/outlet03"]  # unknown is left out, not None


def test_a_failing_inventory_write_does_not_stop_the_polling(agent: Agent) -> None:
    """The store refusing the inventory (a full disk, say) is logged, and the PDUs go on
    being read on their interval."""
    registry, bus = SeriesRegistry(), MemoryBus()
    calls: list[int] = []

    async def refuse(_items: list[Any]) -> None:
        calls.append(1)
        raise RuntimeError("the store refused the inventory")

    apc = PduTarget(
        "pdu/apc",
        agent.target("apc-rpdu2", timeout_s=0.5, retries=0),
        load_profile("apc-rpdu2"),
        interval_s=1.0,
    )
    poller = PduPoller([apc], registry, bus, on_inventory=refuse)

    async def main() -> None:
        running = asyncio.create_task(poller.run())
        await asyncio.sleep(3.5)
        assert not running.done()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    asyncio.run(main())
    assert calls  # the write was tried, and failed
    assert poller.status["pdu/apc"].n_ok >= 3
