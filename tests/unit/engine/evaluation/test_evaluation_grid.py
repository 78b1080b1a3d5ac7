"""The grid: protocols re-targeted to every preset, fault-free runs, one run per catalogue
kind, `--only`, the quick grid; and the time-to-failure log built from prediction events."""

from __future__ import annotations

import pytest

from rackwatch.engine.evaluation.grid import (
    FAULT_FREE,
    FIRST_SEED,
    PROTOCOL_HOURS,
    build_grid,
    catalogue_run,
    seeds_from,
)
from rackwatch.engine.evaluation.retarget import equivalent, exists, retarget
from rackwatch.engine.evaluation.wear import prediction_log, score_wear
from rackwatch.model.records import Event
from rackwatch.twin import FAULTS, PRESETS, SCENARIOS, Twin, build_topology
from rackwatch.twin.faults import ScheduledFault

HOUR_MS = 3_600_000


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("protocol", list(PROTOCOL_HOURS))
def test_every_protocol_fits_every_preset(protocol: str, preset: str) -> None:
    topo = build_topology(preset, 1, 1000)
    faults = retarget(SCENARIOS[protocol].faults, topo)
    assert [f.kind for f in faults] == [f.kind for f in SCENARIOS[protocol].faults]
    assert all(exists(f.entity, topo) for f in faults)
    twin = Twin(preset, seed=1000, faults=faults)  # the twin accepts every target
    assert len(twin.fault_events()) >= len(faults)
    if preset == SCENARIOS[protocol].preset:
        assert faults == SCENARIOS[protocol].faults  # a protocol's own room: unchanged


def test_missing_servers_go_to_free_slots_of_the_same_rack() -> None:
    small = build_topology("small", 1, 0)
    entities = [f.entity for f in retarget(SCENARIOS["sensor-drift"].faults, small)]
    assert entities == ["c01/r01/s04", "c01/r01/s02", "c01/r01/s05", "c01/r01/s03"]
    assert len(set(entities)) == 4


def test_a_missing_rack_is_the_last_one_and_a_burst_fits_the_room() -> None:
    medium = build_topology("medium", 1, 0)
    wear, burst = retarget(SCENARIOS["burst-fan-degradation"].faults, medium)
    assert wear.entity == "c01/r01/s05/fan2"
    assert burst.entity == "c01" and burst.params["n_servers"] == 10
    small = build_topology("small", 1, 0)
    assert retarget([burst], small)[0].params["n_servers"] == 5
    assert equivalent("c01/r03/pdu", small) == "c01/r01/pdu"
    assert equivalent("c02/r01/s01", small) == "c01/r01/s01"


def test_existing_entities_stay_and_default_params_stay_default() -> None:
    large = build_topology("large", 1, 0)
    fault = ScheduledFault("load_burst", "c01/r01/s02", 60.0)
    assert retarget([fault], large) == (fault,)


def test_the_default_grid_per_seed() -> None:
    runs = build_grid(seeds_from(2))
    assert len(runs) == 2 * (16 + 4 + len(FAULTS))
    one = [r for r in runs if r.seed == FIRST_SEED]
    groups = {g: [r for r in one if r.group == g] for g in ("protocol", FAULT_FREE, "catalogue")}
    assert {(r.name.split("/")[0], r.preset) for r in groups["protocol"]} == {
        (p, s) for p in PROTOCOL_HOURS for s in PRESETS
    }
    assert {r.preset for r in groups[FAULT_FREE]} == set(PRESETS)
    assert all(not r.faults for r in groups[FAULT_FREE])
    assert sorted(k for r in groups["catalogue"] for k in r.kinds) == sorted(FAULTS)
    burst = next(r for r in one if r.name.startswith("burst-fan-degradation"))
    assert burst.duration_s == 16 * 3600.0
    assert sum(r.cost for r in runs) < 400  # simulated hours: the 15-minute budget


def test_a_catalogue_run_is_drawn_from_its_seed_and_kind() -> None:
    assert catalogue_run("sensor_stuck", 1000) == catalogue_run("sensor_stuck", 1000)
    assert catalogue_run("sensor_stuck", 1000) != catalogue_run("sensor_stuck", 1001)
    for kind in FAULTS:
        for seed in (1000, 1001):
            run = catalogue_run(kind, seed)
            (fault,) = run.faults
            assert 40 * 60 <= fault.offset_s <= 60 * 60
            assert run.duration_s > fault.offset_s + 600
            Twin(run.preset, seed=seed, start_ms=run.start_ms, faults=run.faults)  # accepted
    wear = catalogue_run("fan_degradation", 1000)
    twin = Twin(wear.preset, seed=1000, faults=wear.faults)
    stop = [e for e in twin.fault_events() if e.attributes.get("cause") == "fan_degradation"]
    assert stop[0].ts - twin.start_ms - wear.faults[0].offset_s * 1000 >= 3 * HOUR_MS
    assert stop[0].ts - twin.start_ms < wear.duration_s * 1000  # it stops within the run


def test_only_keeps_the_runs_that_hold_a_kind() -> None:
    runs = build_grid([1000], only=["sensor_stuck", FAULT_FREE])
    assert {r.name for r in runs} == {
        *(f"sensor-drift/{p}/1000" for p in PRESETS),
        *(f"{FAULT_FREE}/{p}/1000" for p in PRESETS),
        "sensor_stuck/1000",
    }
    with pytest.raises(ValueError, match="unknown fault kind fan_of"):
        build_grid([1000], only=["fan_of"])


def test_the_quick_grid_is_small() -> None:
    runs = build_grid([1000], quick=True)
    assert {r.preset for r in runs} == {"small"}
    assert sum(r.cost for r in runs) <= 8.0
    assert [r.name for r in build_grid([1000], quick=True, only=["disk_failure"])] == [
        "disk_failure/1000"
    ]


def test_the_prediction_log_holds_each_prediction_until_it_moves_or_clears() -> None:
    fan, other = "c01/r01/s01/fan1", "c01/r01/s02/fan1"
    t = 10 * HOUR_MS

    def predicted(ts: int, entity: str, failure: int) -> Event:
        return Event(ts, "prediction.fan_failure", entity, attributes={"failure_ms": failure})

    events = [
        predicted(t, fan, t + 4 * HOUR_MS),
        predicted(t + HOUR_MS, other, t + 9 * HOUR_MS),
        Event(t + 2 * HOUR_MS, "prediction.cleared", other),
    ]
    log = prediction_log(events, [fan])
    assert log.fans == (fan, other)
    assert log.eta_s[:, 0].tolist() == [4 * 3600.0, 3 * 3600.0, 2 * 3600.0]
    assert log.eta_s[:, 1].tolist() == [float("inf"), 8 * 3600.0, float("inf")]
    run = score_wear(events, 1000, fan, wear_start_ms=t - 2 * HOUR_MS, failure_ms=t + 4 * HOUR_MS)
    assert run.lead_s == 4 * 3600.0 and run.errors_s[0] == 0.0
    assert run.covered[0] is False  # no interval was given
    assert run.n_false_fans == 1
