"""GPU machines and the CPU-temperature residual; the roles of a job's memory and disk."""

from __future__ import annotations

import numpy as np

from rackwatch.engine.anomaly.residual import ResidualSpec, _Features, _no_scores
from rackwatch.engine.anomaly.scores import Detector
from rackwatch.engine.intelligence.roles import Role, SeriesRoles, role_of
from rackwatch.model import Batch, SeriesRegistry

INPUTS = ("cpu_temperature_celsius", *ResidualSpec().inputs)


def _machine_batch(registry: SeriesRegistry, machine: str, ts: np.ndarray, cards: int) -> Batch:
    ids = [registry.intern(machine, m) for m in INPUTS]
    ids += [registry.intern(f"{machine}/gpu{k}", "gpu_power_watts") for k in range(cards)]
    values = np.tile(np.linspace(20.0, 60.0, len(ids)), (len(ts), 1))
    return Batch.from_grid(ts, np.array(ids, np.int32), values)


def test_a_machine_with_gpu_cards_gets_no_residual_rows() -> None:
    registry = SeriesRegistry()
    features = _Features(ResidualSpec(), registry)
    ts = 1_767_225_600_000 + np.arange(10, dtype=np.int64) * 5000
    batch = Batch.concat(
        [
            _machine_batch(registry, "c01/r01/s01", ts, 0),
            _machine_batch(registry, "c01/r01/s02", ts, 4),
        ]
    )
    rows = features.build(batch)
    assert {rows.entities[d] for d in rows.device.tolist()} == {"c01/r01/s01"}
    assert len(rows.device) == 10
    assert features.gpu_hosts == {"c01/r01/s02"}


def test_a_card_seen_late_unmaps_its_machine() -> None:
    registry = SeriesRegistry()
    features = _Features(ResidualSpec(), registry)
    ts = 1_767_225_600_000 + np.arange(5, dtype=np.int64) * 5000
    assert len(features.build(_machine_batch(registry, "host/h", ts, 0)).device) == 5
    later = _machine_batch(registry, "host/h", ts + 25_000, 2)
    assert len(features.build(later).device) == 0
    assert len(features.build(_machine_batch(registry, "host/h", ts + 50_000, 0)).device) == 0


def test_no_scores_has_every_component_the_consumer_reads() -> None:
    assert set(_no_scores().components) >= {Detector.RESIDUAL, Detector.DRIFT}


def test_a_jobs_gpu_memory_is_load_and_its_memory_and_disk_follow_the_machine() -> None:
    assert role_of("gpu_memory_used_bytes") is Role.LOAD
    assert role_of("gpu_memory_utilization_ratio") is Role.LOAD
    registry = SeriesRegistry()
    registry.intern("c01/r01/s01", "cpu_utilization_ratio")
    disk = registry.intern("c01/r01/s01/disk-root", "disk_used_bytes")
    memory = registry.intern("c01/r01/s01", "memory_used_bytes")
    roles = SeriesRoles(registry)
    roles.follow()
    assert roles.scope(disk) == "c01/r01/s01"
    assert roles.scope(memory) == "c01/r01/s01"
