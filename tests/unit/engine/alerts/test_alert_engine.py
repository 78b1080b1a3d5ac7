"""The alert engine on a real in-process bus: events published, acknowledgement, maintenance,
notifications, and the twin's fan-fail scenario end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alert_support import FakeTime

from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts import AlertNotFound, AlertStatus, Rule
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.notifiers import SPOOL_FILE, Notification, NotificationSpool
from rackwatch.engine.states import DeviceState, SilencePolicy, UsageStatus
from rackwatch.model import Batch, Command, Event, SeriesRegistry, Severity
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

CPU = "cpu_temperature_celsius"
SERVER = "c01/r01/s01"


class Collecting:
    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.got: list[Notification] = []
        self.closed = False

    async def send(self, notification: Notification) -> None:
        self.got.append(notification)

    async def close(self) -> None:
        self.closed = True


def cpu(reg: SeriesRegistry, ts_s: float, value: float, entity: str = SERVER) -> Batch:
    return Batch.of([int(ts_s * 1000)], [reg.intern(entity, CPU)], [value])


async def started(engine: AlertEngine, bus: MemoryBus) -> tuple[asyncio.Task[None], list[Event]]:
    """Run the engine and collect every event on the bus."""
    events: list[Event] = []
    subscribed = asyncio.Event()

    async def collect() -> None:
        async with bus.subscribe("events.>") as sub:
            subscribed.set()
            async for _subject, event in sub:
                events.append(event)

    collector = asyncio.create_task(collect())
    await subscribed.wait()
    task = asyncio.create_task(engine.run())
    await engine.ready.wait()

    async def both() -> None:
        await task
        await collector

    return asyncio.create_task(both()), events


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_alerts_flow_through_the_bus_and_can_be_acknowledged() -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    notifier = Collecting()
    engine = AlertEngine(
        bus, reg, [Rule("cpu", CPU, warning=75, critical=85)], [notifier], clock=lambda: 0.0
    )

    async def scenario() -> None:
        done, events = await started(engine, bus)
        await bus.publish("telemetry.twin", cpu(reg, 0, 60))
        await bus.publish("telemetry.twin", cpu(reg, 5, 90))
        await settle()
        [alert] = engine.active_alerts()
        assert (alert.severity.name, alert.status) == ("CRITICAL", AlertStatus.FIRING)
        acked = await engine.acknowledge(alert.id, "alice")
        assert acked.status is AlertStatus.ACKNOWLEDGED and acked.acknowledged_ts == 5000
        with pytest.raises(AlertNotFound):
            await engine.acknowledge("nope", "alice")
        await bus.publish("telemetry.twin", cpu(reg, 10, 60))
        await settle()
        await engine.dispatcher.idle()
        bus.close()
        await done
        kinds = [(e.kind, e.entity) for e in events]
        assert kinds == [
            ("alert.fired", SERVER),
            ("state.changed", SERVER),
            ("alert.acknowledged", SERVER),
            ("alert.resolved", SERVER),
            ("state.changed", SERVER),
        ]
        assert events[1].attributes["to"] == "critical"

    asyncio.run(scenario())
    assert [n.kind for n in notifier.got] == ["alert.fired", "alert.resolved"]
    assert notifier.closed
    assert engine.notifier_stats()["collect"]["sent"] == 2
    assert engine.active_alerts() == []
    recent = engine.recent_alerts(since_ms=0)
    assert [(r["level"], r["status"]) for r in recent] == [
        ("CRITICAL", "firing"),
        ("CRITICAL", "resolved"),
    ]
    assert engine.recent_alerts(since_ms=10_000) == []


def test_a_shadow_engine_keeps_alerts_and_states_but_publishes_and_notifies_nothing() -> None:
    # A detect worker's engine (its health reads the states) beside the alerts worker, which
    # owns the events and the notifications: the same alert must not go out twice.
    reg = SeriesRegistry()
    bus = MemoryBus()
    notifier = Collecting()
    engine = AlertEngine(
        bus,
        reg,
        [Rule("cpu", CPU, warning=75, critical=85)],
        [notifier],
        clock=lambda: 0.0,
        publishes=False,
    )

    async def scenario() -> list[Event]:
        done, events = await started(engine, bus)
        await bus.publish("telemetry.twin", cpu(reg, 0, 60))
        await bus.publish("telemetry.twin", cpu(reg, 5, 90))
        await settle()
        [alert] = engine.active_alerts()
        assert alert.severity.name == "CRITICAL"
        assert engine.states()[SERVER] is DeviceState.CRITICAL
        await engine.acknowledge(alert.id, "alice")
        await engine.dispatcher.idle()
        bus.close()
        await done
        return events

    assert asyncio.run(scenario()) == []
    assert notifier.got == []


def test_the_engine_obeys_the_acknowledgements_a_front_end_sends() -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    engine = AlertEngine(bus, reg, [Rule("cpu", CPU, warning=75, critical=85)], clock=lambda: 0.0)

    async def scenario() -> list[Event]:
        done, events = await started(engine, bus)
        orders = asyncio.create_task(engine.obey())
        await settle()
        await bus.publish("telemetry.twin", cpu(reg, 5, 90))
        await settle()
        [alert] = engine.active_alerts()
        bad = Command("alerts", "alert.acknowledge", {"ids": "not a list"}, "mallory")
        await bus.publish("commands.alerts", bad)  # skipped, and the next one still obeyed
        ack = Command("alerts", "alert.acknowledge", {"ids": [alert.id, "other"]}, "alice")
        await bus.publish("commands.alerts", ack)
        await settle()
        bus.close()
        await done
        await orders
        return events

    events = asyncio.run(scenario())
    acks = [e for e in events if e.kind == "alert.acknowledged"]
    assert [e.attributes["by"] for e in acks] == ["alice"]
    [alert] = engine.active_alerts()
    assert alert.status is AlertStatus.ACKNOWLEDGED


def test_maintenance_suppresses_notifications_and_shows_in_states() -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    notifier = Collecting()
    engine = AlertEngine(bus, reg, [Rule("cpu", CPU, warning=75)], [notifier])
    published: list[Any] = []

    async def scenario() -> None:
        async with bus.subscribe("events.>") as sub:
            engine.dispatcher.start()
            engine.process(cpu(reg, 0, 60))
            await engine.set_maintenance(SERVER, "bob", "swap the CPU fan")
            events = engine.process(cpu(reg, 5, 90))
            assert [e.kind for e in events] == ["alert.fired"]
            assert events[0].attributes["is_suppressed"] is True
            assert engine.states() == {SERVER: DeviceState.MAINTENANCE}
            await engine.clear_maintenance(SERVER, "bob")
            assert engine.states() == {SERVER: DeviceState.WARNING}
            details = engine.state_details(SERVER)
            assert details is not None and details["state"] == "warning"
            await engine.dispatcher.idle()
            await engine.dispatcher.close()
            while sub.pending:
                published.append(await anext(aiter(sub)))

    asyncio.run(scenario())
    assert notifier.got == []  # raised during maintenance: never told
    changes = [(m.attributes["to"], m.attributes.get("by")) for _, m in published]
    assert changes == [("maintenance", "bob"), ("warning", "bob")]


def test_fan_fail_scenario_end_to_end() -> None:
    """The twin's fan-fail: s03/fan1 stops at 30 min. The fan-stopped alert fires and the fan
    is FAILED; s03's CPU warms by several °C (from about 43 °C at night, far below the default
    CPU rule) and a rule suited to that hour (48 °C held 5 min) fires for s03 only."""
    reg = SeriesRegistry()
    source = TwinSource(Twin.from_scenario("fan-fail"), reg)
    start_ms = source.now_ms
    rules = [
        *build_alert_rules(AlertSettings()),
        Rule("cpu-warm", CPU, warning=48, for_s=300, summary="CPU warmer than usual"),
    ]
    bus = MemoryBus()
    notifier = Collecting()
    engine = AlertEngine(bus, reg, rules, [notifier])

    async def scenario() -> list[Event]:
        done, events = await started(engine, bus)
        while source.now_ms - start_ms < 40 * 60_000:  # 40 simulated minutes, 1 min a batch
            batch, _faults = source.read(12)
            await bus.publish("telemetry.twin", batch)
            await settle()
        await engine.dispatcher.idle()
        bus.close()
        await done
        return events

    events = asyncio.run(scenario())
    fired = [
        ((e.ts - start_ms) / 1000, e.entity, e.attributes["rule"])
        for e in events
        if e.kind == "alert.fired"
    ]
    assert fired[0] == (1810.0, "c01/r01/s03/fan1", "fan-stopped")  # 10 s after the fault
    assert [(entity, rule) for _, entity, rule in fired] == [
        ("c01/r01/s03/fan1", "fan-stopped"),
        ("c01/r01/s03", "cpu-warm"),
    ]
    assert 1800 < fired[1][0] < 1800 + 600
    states = engine.states()
    assert states["c01/r01/s03/fan1"] is DeviceState.FAILED
    assert states["c01/r01/s03"] is DeviceState.WARNING
    assert states["c01/r01/s03/fan2"] is DeviceState.OK
    failed = [e for e in events if e.kind == "state.changed" and e.attributes["to"] == "failed"]
    assert [e.entity for e in failed] == ["c01/r01/s03/fan1"]
    assert "fan stopped, 0 rpm (CRITICAL below 100 rpm)" in failed[0].attributes["reason"]
    assert [n.rule for n in notifier.got] == ["fan-stopped", "cpu-warm"]
    assert set(engine.usage().values()) <= {UsageStatus.IDLE, UsageStatus.BUSY}
    assert len(engine.usage()) == 5


def test_a_silent_source_makes_its_devices_unknown_on_the_wall_clock() -> None:
    """Issue 8 item 6: the samples' clock stops when a source stops; the watchdog on the
    (injected) wall clock raises source.unavailable, and only that source's devices become
    UNKNOWN; its next batch brings them back."""
    reg = SeriesRegistry()
    bus = MemoryBus()
    notifier = Collecting()
    wall = FakeTime()
    silence = SilencePolicy(30.0, monotonic=wall, sleep=wall.sleep)
    engine = AlertEngine(bus, reg, [Rule("cpu", CPU, warning=75)], [notifier], silence=silence)
    host = "host/db1"

    async def scenario() -> list[Event]:
        done, events = await started(engine, bus)
        await bus.publish("telemetry.twin", cpu(reg, 0, 80))
        await bus.publish("telemetry.host", cpu(reg, 0, 50, entity=host))
        await settle()
        for t in (10, 20, 30):  # the host keeps talking, the twin says nothing
            await wall.advance(10)
            await bus.publish("telemetry.host", cpu(reg, t, 50, entity=host))
            await settle()
        assert engine.states() == {SERVER: DeviceState.UNKNOWN, host: DeviceState.OK}
        assert engine.silent_sources() == ["twin"]
        details = engine.state_details(SERVER)
        assert details is not None and "source twin sent nothing for 30 s" in details["reason"]
        await wall.advance(60)
        await bus.publish("telemetry.twin", cpu(reg, 35, 80))
        await settle()
        assert engine.states() == {SERVER: DeviceState.WARNING, host: DeviceState.UNKNOWN}
        await engine.dispatcher.idle()
        bus.close()
        await done
        return events

    events = asyncio.run(scenario())
    seen = [(str(e.kind), e.entity, e.attributes.get("to")) for e in events]
    assert seen == [
        ("alert.fired", SERVER, None),
        ("state.changed", SERVER, "warning"),
        ("source.unavailable", "twin", None),
        ("state.changed", SERVER, "unknown"),
        ("source.unavailable", "host", None),
        ("state.changed", host, "unknown"),
        ("source.recovered", "twin", None),
        ("state.changed", SERVER, "warning"),
    ]
    unavailable = events[2]
    assert unavailable.ts == 30_000 and unavailable.attributes["silent_s"] == 30.0
    assert unavailable.attributes["last_sample_ms"] == 0
    assert [(n.kind, n.entity, n.is_resolved) for n in notifier.got] == [
        ("alert.fired", SERVER, False),
        ("source.unavailable", "twin", False),
        ("source.unavailable", "host", False),
        ("source.recovered", "twin", True),
    ]
    assert notifier.got[1].alert_id == notifier.got[3].alert_id  # one incident, one id


def test_the_engine_sends_what_the_last_stop_spooled_before_anything_new(tmp_path: Path) -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    left = Notification(
        "alert.fired", "feedfacefeedface", 0, SERVER, "cpu", CPU, "celsius",
        Severity.CRITICAL, 90.0, 85.0, "left over from the last stop",
    )  # fmt: skip
    NotificationSpool(tmp_path / SPOOL_FILE).save([("collect", left)])
    notifier = Collecting()
    engine = AlertEngine(
        bus, reg, [Rule("cpu", CPU, warning=75)], [notifier], spool=tmp_path / SPOOL_FILE
    )

    async def scenario() -> None:
        done, _events = await started(engine, bus)
        await bus.publish("telemetry.twin", cpu(reg, 0, 80))
        await settle()
        await engine.dispatcher.idle()
        bus.close()
        await done

    asyncio.run(scenario())
    assert [(n.kind, n.alert_id == "feedfacefeedface") for n in notifier.got] == [
        ("alert.fired", True),  # the spooled one first
        ("alert.fired", False),
    ]
    assert engine.notifier_stats()["collect"]["restored"] == 1
    assert not (tmp_path / SPOOL_FILE).exists()  # delivered: nothing kept
