"""A small room with known answers for the report tests, written into a real DuckDBStore.

Day 2026-03-05 (UTC). Three machines: `c01/r01/s01` (A), `c01/r01/s02` (B) and `host/h1`
(H, whose per-core `host/h1/cpu0` is a part, not a machine), plus series the reports must
leave out (a PDU's power, fan speeds). Every sample's minute and value is chosen so that
each statistic can be worked out by hand; the tests state the arithmetic.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from rackwatch.model import Batch, Event, EventKind, SeriesRegistry, Severity
from rackwatch.store.duckdb import DuckDBStore

GIB = 1024**3
DAY = dt.date(2026, 3, 5)
T0 = int(dt.datetime(2026, 3, 5, tzinfo=dt.UTC).timestamp() * 1000)
MIN = 60_000
HOUR = 3_600_000
A, B, H = "c01/r01/s01", "c01/r01/s02", "host/h1"


def at(hour: int, minute: int = 0, second: int = 0, day: int = 0) -> int:
    return T0 + day * 24 * HOUR + hour * HOUR + minute * MIN + second * 1000


# (entity, metric, [(ts_ms, value), ...])
SAMPLES: list[tuple[str, str, list[tuple[int, float]]]] = [
    # CPU: A's 10:00 bucket holds 0.1 and 0.3 (avg 0.2), its 14:00 bucket 0.8 and 1.0.
    (
        A,
        "cpu_utilization_ratio",
        [
            (at(10), 0.1),
            (at(10, 0, 30), 0.3),
            (at(10, 1), 0.4),
            (at(14), 0.8),
            (at(14, 0, 30), 1.0),
        ],
    ),
    (B, "cpu_utilization_ratio", [(at(10), 0.1), (at(14), 0.5), (at(14, 1), 0.7)]),
    (H, "cpu_utilization_ratio", [(at(10), 0.0)]),
    (f"{H}/cpu0", "cpu_utilization_ratio", [(at(10), 1.0)]),  # a core: not a machine
    # Memory
    (A, "memory_used_bytes", [(at(10), 4 * GIB), (at(11), 6 * GIB)]),
    (B, "memory_used_bytes", [(at(10), 2 * GIB)]),
    (A, "memory_utilization_ratio", [(at(10), 0.5)]),
    (B, "memory_utilization_ratio", [(at(10), 0.25)]),
    # Disks: A has two, B one.
    (f"{A}/disk-root", "disk_used_bytes", [(at(10), 100e9), (at(10, 30), 200e9)]),
    (f"{A}/disk-data", "disk_used_bytes", [(at(10), 10e9)]),
    (f"{B}/disk-root", "disk_used_bytes", [(at(10), 50e9), (at(12), 70e9)]),
    (f"{A}/disk-root", "disk_utilization_ratio", [(at(10), 0.5)]),
    (f"{B}/disk-root", "disk_utilization_ratio", [(at(10), 0.25)]),
    # Network: A through its NIC; B on the machine itself, which wins over its NIC.
    (f"{A}/net-eth0", "network_transmit_bytes_per_second", [(at(10), 1000.0), (at(10, 1), 1000.0)]),
    (f"{A}/net-eth0", "network_receive_bytes_per_second", [(at(10), 500.0)]),
    (B, "network_transmit_bytes_per_second", [(at(10), 2000.0)]),
    (f"{B}/net-eth0", "network_transmit_bytes_per_second", [(at(10), 9999.0)]),
    # GPUs: A/gpu0 free 10, 4, 9, 8 GiB (8 is not "more than 8"): idle 2 of 4 buckets;
    # memory use 0.05, 0.5, 0.5, 0.10 (0.10 is not "under 10 %"): 1 of 4.
    (
        f"{A}/gpu0",
        "gpu_memory_free_bytes",
        [(at(10), 10 * GIB), (at(10, 1), 4 * GIB), (at(10, 2), 9 * GIB), (at(10, 3), 8 * GIB)],
    ),
    (
        f"{A}/gpu0",
        "gpu_memory_utilization_ratio",
        [(at(10), 0.05), (at(10, 1), 0.5), (at(10, 2), 0.5), (at(10, 3), 0.10)],
    ),
    (f"{A}/gpu0", "gpu_utilization_ratio", [(at(10), 0.2), (at(10, 1), 0.6)]),
    # A/gpu1: free 20 GiB; then a bucket of 2 and 16 GiB (avg 9: idle); then 2 and 12 (avg 7).
    (
        f"{A}/gpu1",
        "gpu_memory_free_bytes",
        [
            (at(10), 20 * GIB),
            (at(10, 1), 2 * GIB),
            (at(10, 1, 30), 16 * GIB),
            (at(10, 2), 2 * GIB),
            (at(10, 2, 30), 12 * GIB),
        ],
    ),
    (
        f"{A}/gpu1",
        "gpu_memory_utilization_ratio",
        [(at(10), 0.01), (at(10, 1), 0.01), (at(10, 2), 0.01)],
    ),
    (f"{B}/gpu0", "gpu_memory_free_bytes", [(at(10), 1 * GIB)]),
    (f"{B}/gpu0", "gpu_memory_utilization_ratio", [(at(10), 0.9)]),
    # Power: A 300 W for two minutes, B 600 W for one.
    (A, "power_watts", [(at(10), 300.0), (at(10, 1), 300.0)]),
    (B, "power_watts", [(at(10), 600.0)]),
    (A, "inlet_temperature_celsius", [(at(10), 20.0), (at(10, 1), 24.0)]),
    # Left out: not on a machine, or not a report metric.
    ("c01/r01/pdu", "power_watts", [(at(10), 5000.0)]),
    (A, "fan_rpm", [(at(10), 9000.0)]),
    # Outside the day: must not count.
    (B, "power_watts", [(at(10, day=1), 99_999.0), (at(23, 59, day=-1), 99_999.0)]),
]

EVENTS = [
    Event(at(9), EventKind.ALERT_FIRED, A, Severity.WARNING,
          {"alert_id": "a1", "rule": "cpu-hot", "level": "WARNING", "message": "hot",
           "fired_ts": at(9)}),
    Event(at(9, 30), EventKind.ALERT_RESOLVED, A, Severity.INFO,
          {"alert_id": "a1", "rule": "cpu-hot", "level": "WARNING", "message": "hot",
           "fired_ts": at(9)}),
    Event(at(23), EventKind.ALERT_FIRED, B, Severity.CRITICAL,
          {"alert_id": "a2", "rule": "power-high", "level": "CRITICAL", "message": "power",
           "fired_ts": at(23)}),
    Event(at(12), EventKind.INCIDENT_OPENED, A, Severity.CRITICAL,
          {"id": "i1", "cause": "fan_failure", "nature": "real", "start": at(12),
           "n_anomalies": 2}),
    Event(at(12, 10), EventKind.INCIDENT_CLOSED, A, Severity.INFO,
          {"id": "i1", "cause": "fan_failure", "nature": "real", "start": at(12),
           "end": at(12, 10), "n_anomalies": 2}),
    Event(at(11), EventKind.FAULT_INJECTED, f"{A}/fan1", Severity.CRITICAL,
          {"fault": "fan_stop"}, end_ts=at(11, 5)),
]  # fmt: skip


def write_room(store: DuckDBStore, registry: SeriesRegistry) -> None:
    ts, ids, values = [], [], []
    for entity, metric, points in SAMPLES:
        series = registry.intern(entity, metric)
        for when, value in points:
            ts.append(when)
            ids.append(series)
            values.append(value)
    store.write(
        Batch(np.asarray(ts, np.int64), np.asarray(ids, np.int32), np.asarray(values, np.float64))
    )
    store.write_events(EVENTS)


def open_room(path: Path) -> DuckDBStore:
    """A store holding the room (its clock two days after the day)."""
    registry = SeriesRegistry()
    store = DuckDBStore(path, registry, clock=lambda: at(0, day=2), wal_sync_seconds=0)
    write_room(store, registry)
    return store
