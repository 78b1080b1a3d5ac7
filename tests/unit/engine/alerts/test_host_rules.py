"""The default rules on real machines' readings: memory, disk used and free, a busy host CPU
and a hot GPU fire; the twin's busy servers do not trip the host CPU rule."""

from __future__ import annotations

from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.model import SeriesRegistry
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.sources.readings import Reading, to_batch

GIB = 1024**3


def readings(memory: float, free: float, cpu: float, gpu_c: float) -> list[Reading]:
    return [
        Reading("host/web1", "memory_utilization_ratio", memory),
        Reading("host/web1/disk-root", "disk_utilization_ratio", 0.5),
        Reading("host/web1/disk-root", "disk_free_bytes", free),
        Reading("host/web1", "cpu_utilization_ratio", cpu),
        Reading("host/web1/cpu0", "cpu_utilization_ratio", cpu),
        Reading("host/web1/gpu0", "gpu_temperature_celsius", gpu_c),
        Reading("c01/r01/s01", "cpu_utilization_ratio", 0.99),  # a twin server, always busy
    ]


def test_the_default_rules_fire_on_a_hosts_readings() -> None:
    registry = SeriesRegistry()
    engine = AlertEngine(MemoryBus(), registry, build_alert_rules(AlertSettings()), [])
    t0 = 1_800_000_000_000
    fired: set[tuple[str, str, str]] = set()
    for i in range(5):  # a quiet minute
        batch = to_batch(readings(0.5, 50 * GIB, 0.2, 60.0), registry, t0 + i * 5000)
        assert not [e for e in engine.process(batch, source="host") if e.kind == "alert.fired"]
    for i in range(5, 5 + 70):  # then six minutes of trouble
        batch = to_batch(readings(0.95, 0.5 * GIB, 0.99, 91.0), registry, t0 + i * 5000)
        for event in engine.process(batch, source="host"):
            if event.kind == "alert.fired":
                attrs = event.attributes
                fired.add((event.entity, str(attrs["rule"]), str(attrs["level"])))
    assert {(entity, rule) for entity, rule, _ in fired} == {
        ("host/web1", "memory-used"),
        ("host/web1/disk-root", "disk-free-low"),
        ("host/web1", "cpu-busy"),
        ("host/web1/gpu0", "gpu-temperature"),
    }
    levels = {rule: level for _e, rule, level in fired}
    assert levels["memory-used"] == levels["gpu-temperature"] == "CRITICAL"
    assert engine.states()["host/web1"].value in ("critical", "warning")
