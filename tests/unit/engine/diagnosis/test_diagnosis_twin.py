"""Diagnosis on small twin runs with known faults: each fault gets one incident with the right
scope, nature and cause, soon after it starts; a fault-free run gets none.

Each run drives the twin, the fan controller and the intelligence together
(engine/evaluation/runner.py), about a second of CPU per simulated hour."""

from __future__ import annotations

from typing import Any

import pytest

from rackwatch.engine.evaluation.grid import RunSpec
from rackwatch.engine.evaluation.runner import RunResult, execute
from rackwatch.twin import ScheduledFault

FAULT_AT_S = 1800.0


def run(preset: str, *faults: ScheduledFault, hours: float = 1.0, seed: int = 7) -> RunResult:
    return execute(RunSpec("test", "catalogue", preset, seed, hours * 3600.0, faults))


def fault(kind: str, entity: str, **params: Any) -> ScheduledFault:
    return ScheduledFault(kind, entity, FAULT_AT_S, params)


def incidents(result: RunResult) -> list[tuple[str | None, str | None, str | None, str]]:
    return [
        (d.scope, d.nature, d.cause, d.entity) for d in result.detections if d.source == "incident"
    ]


def latency_s(result: RunResult) -> float:
    first = min(d.reported_ms for d in result.detections if d.source == "incident")
    return (first - result.start_ms) / 1000.0 - FAULT_AT_S


def test_a_fault_free_hour_raises_no_incident() -> None:
    assert incidents(run("small")) == []


def test_a_stopped_fan_is_a_real_fan_failure_of_its_server_within_seconds() -> None:
    result = run("small", fault("fan_off", "c01/r01/s03/fan1"))
    assert incidents(result) == [("server", "real", "fan_failure", "c01/r01/s03")]
    assert 0.0 <= latency_s(result) <= 15.0


def test_an_airflow_probe_stuck_at_zero_is_the_sensor_not_the_airflow() -> None:
    result = run("small", fault("sensor_stuck", "c01/r01/s02", metric="airflow_cfm", value=0.0))
    assert incidents(result) == [("server", "sensor", "sensor_stuck", "c01/r01/s02")]
    assert latency_s(result) <= 60.0


def test_a_probe_answering_null_is_a_dead_sensor() -> None:
    result = run("small", fault("sensor_null", "c01/r01/s04", metric="cpu_temperature_celsius"))
    assert incidents(result) == [("server", "sensor", "sensor_null", "c01/r01/s04")]
    assert latency_s(result) <= 60.0


def test_a_failed_disk_is_its_server_s_disk() -> None:
    result = run("small", fault("disk_failure", "c01/r01/s05"))
    assert incidents(result) == [("server", "real", "disk", "c01/r01/s05")]
    assert latency_s(result) <= 15.0


def test_a_capped_pdu_is_one_rack_incident() -> None:
    result = run("medium", fault("pdu_cap", "c01/r01/pdu"))
    assert incidents(result) == [("rack", "real", "power_cap", "c01/r01")]


@pytest.mark.parametrize("seed", [3])
def test_a_degraded_crac_is_one_room_incident_naming_the_warming_devices(seed: int) -> None:
    result = run("large", fault("crac_degradation", "room/crac1"), hours=2.5, seed=seed)
    found = incidents(result)
    assert found[0][:3] == ("room", "real", "cooling"), found
    assert all(scope != "server" or cause != "cooling" for scope, _, cause, _ in found)


def test_a_slowly_drifting_cpu_probe_is_the_sensor_drifting() -> None:
    """Seed 000's drift (+0.2 °C/h): nothing else of the server moves, so after a few hours the
    residual's slow average calls the probe, and nothing else is raised."""
    drift = fault("sensor_drift", "c01/r01/s04", metric="cpu_temperature_celsius")
    result = run("small", drift, hours=7.0)
    assert incidents(result) == [("server", "sensor", "sensor_drift", "c01/r01/s04")]
    assert 3600.0 <= latency_s(result) <= 5.5 * 3600.0
