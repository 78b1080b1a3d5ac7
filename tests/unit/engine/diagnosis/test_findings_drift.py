"""A drift anomaly (the residual's slow average) is the probe unless the chassis warms too."""

from __future__ import annotations

from rackwatch.engine.diagnosis.findings import Candidate, DiagnosisConfig, Finding, classify
from rackwatch.engine.diagnosis.incident import Cause, Nature
from rackwatch.engine.diagnosis.signals import SignalBook
from rackwatch.model import SeriesRegistry

SERVER = "c01/r01/s04"


def candidate(metric: str, detector: str, z: float, start_ms: int) -> Candidate:
    return Candidate(
        ("anomaly", SERVER, metric, detector), 0, SERVER, SERVER, metric, detector, z, start_ms
    )


def test_a_drift_alone_is_the_probe_and_with_a_warming_chassis_is_real() -> None:
    book = SignalBook(SeriesRegistry())
    drift = candidate("cpu_temperature_celsius", "drift", 2.6, 10_000_000)
    alone = classify(drift, 10_000_000, book, [], DiagnosisConfig())
    assert isinstance(alone, Finding)
    assert (alone.nature, alone.cause, alone.ts) == (Nature.SENSOR, Cause.SENSOR_DRIFT, 10_000_000)
    assert "+2.6 sigma" in alone.evidence
    chassis = candidate("chassis_temperature_celsius", "level_shift", 3.0, 10_500_000)
    warmer = classify(drift, 10_600_000, book, [chassis], DiagnosisConfig())
    assert isinstance(warmer, Finding)
    assert (warmer.nature, warmer.cause, warmer.ts) == (Nature.REAL, Cause.UNKNOWN, 10_500_000)
    cooler = candidate("chassis_temperature_celsius", "level_shift", -3.0, 10_500_000)
    other_way = classify(drift, 10_600_000, book, [cooler], DiagnosisConfig())
    assert isinstance(other_way, Finding) and other_way.cause is Cause.SENSOR_DRIFT
