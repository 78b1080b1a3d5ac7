"""The twin cut into MQTT device messages (`TwinDevices.messages`, no broker needed)."""

from __future__ import annotations

from rackwatch.sources.mqtt import BrokerAddress
from rackwatch.sources.mqtt.devices import TwinDevices
from rackwatch.sources.mqtt.payloads import Capabilities, Telemetry, decode, encode
from rackwatch.twin import Twin

START_MS = 1_767_225_600_000


def test_every_sample_of_a_step_lands_in_its_devices_message() -> None:
    twin = Twin("small", start_ms=START_MS)
    room = TwinDevices(twin, BrokerAddress("127.0.0.1", 1), prefix="p")
    batch, _events = room.source.read(2)
    messages = room.messages(batch)

    # 8 devices with series (room, CRAC, PDU, 5 servers) x 2 steps; racks and cluster have none
    assert len(messages) == 16
    assert sorted({m[1].ts for m in messages}) == [START_MS, START_MS + 5000]
    n_samples = sum(
        len(t.values) + sum(len(v) for v in t.components.values()) for _d, t, _s in messages
    )
    assert n_samples == len(batch)  # nothing lost, nothing invented

    _device, telemetry, state = next(m for m in messages if m[0] == "c01.r01.s03")
    assert telemetry.values["cpu_temperature_celsius"] > 15
    assert sorted(telemetry.components) == ["fan1", "fan2"]
    # the twin starts every fan at medium (level 2): the retained state says so
    assert state is not None and state.fans == {"fan1": 2, "fan2": 2}
    assert decode(Telemetry, encode(telemetry)) == telemetry  # what goes on the wire reads back


def test_capabilities_describe_the_twins_inventory() -> None:
    room = TwinDevices(Twin("small", start_ms=START_MS), BrokerAddress("127.0.0.1", 1))
    server = room.links["c01.r01.s02"].capabilities
    assert server.kind == "server" and server.fans == ["fan1", "fan2"]
    assert server.rack == "c01/r01" and server.slot == 2
    assert "cpu_temperature_celsius" in server.metrics
    assert room.links["c01.r01.pdu"].capabilities.kind == "pdu"
    assert room.client_prefix == "rackwatch"  # sessions named after the prefix
    for link in room.links.values():
        assert decode(Capabilities, encode(link.capabilities)) == link.capabilities
