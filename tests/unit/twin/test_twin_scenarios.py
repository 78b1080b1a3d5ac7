"""Presets, entity paths, inventory and the named scenarios of seed 000."""

from __future__ import annotations

import pytest

from rackwatch.model import METRICS
from rackwatch.twin import PRESETS, SCENARIOS, Twin
from rackwatch.twin.sensors import NOISE


@pytest.mark.parametrize(
    ("preset", "servers", "racks"),
    [("small", 5, 1), ("medium", 10, 1), ("large", 15, 2), ("very-large", 20, 2)],
)
def test_presets_lay_servers_in_racks_of_ten(preset: str, servers: int, racks: int) -> None:
    topo = Twin(preset, clusters=3).topology
    assert PRESETS[preset].n_servers == servers
    assert (topo.n_servers, topo.n_racks, topo.n_fans) == (3 * servers, 3 * racks, 6 * servers)
    assert topo.rack_size.max() <= 10


def test_default_twin_is_very_large_and_names_entities_by_path() -> None:
    twin = Twin()
    entities = {key.entity for key in twin.series_keys}
    assert twin.topology.n_servers == 20
    assert {
        "c01/r01/s01",
        "c01/r01/s01/fan1",
        "c01/r01/s01/fan2",
        "c01/r02/s10",
        "c01/r01/pdu",
        "room/crac1",
        "room",
    } <= entities
    assert {key.metric for key in twin.series_keys} == set(NOISE) <= set(METRICS)
    assert len(twin.series_keys) == len(set(twin.series_keys)) == 269


def test_inventory_describes_every_entity() -> None:
    twin = Twin("large", clusters=2)
    items = {item["entity"]: item for item in twin.inventory()}
    assert {key.entity for key in twin.series_keys} <= set(items)
    server, fan = items["c02/r02/s03"], items["c02/r02/s03/fan2"]
    assert server["kind"] == "server" and server["slot"] == 3 and server["rack"] == "c02/r02"
    assert 50 <= server["idle_watts"] <= 120 and 150 <= server["peak_watts"] <= 500
    assert fan["levels"]["3"]["power_watts"] > fan["levels"]["2"]["power_watts"] > 0
    assert fan["levels"]["0"]["airflow_cfm"] == 0.0
    assert items["c01/r01/pdu"]["capacity_watts"] > 0 and items["room/crac1"]["kind"] == "crac"
    assert {items[c]["kind"] for c in ("c01", "c02")} == {"cluster"}


@pytest.mark.parametrize(
    ("name", "preset", "kinds"),
    [
        ("fan-fail", "small", ["fan_off"]),
        ("sensor-drift", "medium", ["sensor_drift", "load_burst", "load_burst", "sensor_stuck"]),
        ("crac-degraded", "large", ["crac_degradation"]),
        ("burst-fan-degradation", "very-large", ["fan_degradation", "load_burst", "fan_off"]),
        ("network-loss", "very-large", ["telemetry_loss", "telemetry_loss"]),
        ("small", "small", []),
        ("very-large", "very-large", []),
    ],
)
def test_named_scenarios_schedule_the_protocols(name: str, preset: str, kinds: list[str]) -> None:
    twin = Twin.from_scenario(name, seed=1)
    assert SCENARIOS[name].preset == preset == twin.topology.preset
    labels = twin.fault_events()
    assert [e.attributes["fault"] for e in labels] == kinds
    assert all(e.ts > twin.start_ms for e in labels)  # after a calm start
    scheduled = {(f.kind, f.offset_s) for f in SCENARIOS[name].faults}
    assert scheduled <= {(e.attributes["fault"], (e.ts - twin.start_ms) / 1000) for e in labels}


def test_burst_scenario_hits_ten_servers_of_the_default_room() -> None:
    twin = Twin.from_scenario("burst-fan-degradation", seed=1)
    burst = next(e for e in twin.fault_events() if e.attributes["fault"] == "load_burst")
    assert len(burst.attributes["servers"]) == 10
    assert burst.end_ts is not None and burst.end_ts - burst.ts == 120_000


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown twin scenario"):
        Twin.from_scenario("huge")
    with pytest.raises(ValueError, match="unknown twin preset"):
        Twin("huge")


def test_inventory_and_labels_are_plain_json() -> None:
    import json

    twin = Twin.from_scenario("sensor-drift")
    json.dumps(twin.inventory())
    json.dumps([{**e.attributes, "ts": e.ts, "end_ts": e.end_ts} for e in twin.fault_events()])


def test_run_zero_steps_is_an_empty_frame() -> None:
    twin = Twin("small")
    frame = twin.run(0)
    assert frame.values.shape == (0, len(twin.series_keys)) and len(frame) == 0
    assert twin.now_ms == twin.start_ms
