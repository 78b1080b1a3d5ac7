"""Which series a report reads: the machines of the room and their parts.

A machine is an entity with `cpu_utilization_ratio` that has no ancestor with it (a twin
server `c01/r01/s01`, a real host `host/<name>`; a host's per-core `host/h/cpu0` is one of
its parts). Each report metric is read at one scope:

- `machine`: the machine's own series only (CPU, memory, power, CPU and inlet temperatures);
- `part`: the machine's own series when it has one, else its parts' (disks `…/disk-root`,
  NICs `…/net-eth0`), so a machine that reports both a total and its parts is not counted
  twice;
- `gpu`: its GPU cards' series (`…/gpu<k>`).

Series outside every machine (racks, PDUs, the room) are left out. Pure: the selection is
made from the series keys (a few hundred thousand at most), never from the data.

>>> sel = select([(0, "c01/r01/s01", "cpu_utilization_ratio"),
...               (1, "c01/r01/s01/disk-root", "disk_used_bytes"),
...               (2, "c01/r01/s01/gpu0", "gpu_utilization_ratio"),
...               (3, "host/h/cpu0", "cpu_utilization_ratio"),
...               (4, "host/h", "cpu_utilization_ratio"),
...               (5, "c01/r01/pdu", "power_watts")])
>>> sel.machines, sel.cards
(('c01/r01/s01', 'host/h'), ('c01/r01/s01/gpu0',))
>>> [(r.series, r.part) for r in sel.rows]  # doctest: +NORMALIZE_WHITESPACE
[(0, 'c01/r01/s01'), (1, 'c01/r01/s01/disk-root'), (2, 'c01/r01/s01/gpu0'),
 (4, 'host/h')]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from rackwatch.model.entity import ancestors

MACHINE_METRIC = "cpu_utilization_ratio"


class Scope(enum.StrEnum):
    MACHINE = "machine"
    PART = "part"
    GPU = "gpu"


class Fleet(enum.StrEnum):
    """How a time slot's fleet value is formed from its series."""

    AVERAGE = "average"
    """The mean of the readings (ratios, temperatures)."""
    TOTAL = "total"
    """The sum of each series' mean (bytes, watts, bytes per second: the fleet's total)."""


@dataclass(frozen=True, slots=True)
class ReportMetric:
    name: str
    scope: Scope
    fleet: Fleet
    title: str
    unit: str


REPORT_METRICS: tuple[ReportMetric, ...] = (
    ReportMetric("cpu_utilization_ratio", Scope.MACHINE, Fleet.AVERAGE, "CPU utilisation", "ratio"),
    ReportMetric(
        "memory_utilization_ratio", Scope.MACHINE, Fleet.AVERAGE, "Memory utilisation", "ratio"
    ),
    ReportMetric("memory_used_bytes", Scope.MACHINE, Fleet.TOTAL, "Memory used", "bytes"),
    ReportMetric("disk_utilization_ratio", Scope.PART, Fleet.AVERAGE, "Disk utilisation", "ratio"),
    ReportMetric("disk_used_bytes", Scope.PART, Fleet.TOTAL, "Disk used", "bytes"),
    ReportMetric(
        "network_receive_bytes_per_second",
        Scope.PART,
        Fleet.TOTAL,
        "Network down (received)",
        "bytes_per_second",
    ),
    ReportMetric(
        "network_transmit_bytes_per_second",
        Scope.PART,
        Fleet.TOTAL,
        "Network up (sent)",
        "bytes_per_second",
    ),
    ReportMetric("gpu_utilization_ratio", Scope.GPU, Fleet.AVERAGE, "GPU utilisation", "ratio"),
    ReportMetric(
        "gpu_memory_utilization_ratio", Scope.GPU, Fleet.AVERAGE, "GPU memory utilisation", "ratio"
    ),
    ReportMetric("gpu_memory_used_bytes", Scope.GPU, Fleet.TOTAL, "GPU memory used", "bytes"),
    ReportMetric("gpu_memory_free_bytes", Scope.GPU, Fleet.TOTAL, "GPU memory free", "bytes"),
    ReportMetric("gpu_power_watts", Scope.GPU, Fleet.TOTAL, "GPU power", "watts"),
    ReportMetric("gpu_temperature_celsius", Scope.GPU, Fleet.AVERAGE, "GPU temperature", "celsius"),
    ReportMetric("power_watts", Scope.MACHINE, Fleet.TOTAL, "Power", "watts"),
    ReportMetric(
        "cpu_temperature_celsius", Scope.MACHINE, Fleet.AVERAGE, "CPU temperature", "celsius"
    ),
    ReportMetric(
        "inlet_temperature_celsius", Scope.MACHINE, Fleet.AVERAGE, "Inlet temperature", "celsius"
    ),
)
BY_NAME = {m.name: m for m in REPORT_METRICS}


@dataclass(frozen=True, slots=True)
class SeriesRow:
    series: int
    metric: str
    machine: str
    part: str
    """The entity of the series: the machine itself, a disk, a NIC or a GPU card."""


@dataclass(frozen=True, slots=True)
class Selection:
    machines: tuple[str, ...]
    cards: tuple[str, ...]
    rows: tuple[SeriesRow, ...]

    def table(self) -> pa.Table:
        """The rows as the `report_series(series, metric, machine, part)` table of the SQL."""
        return pa.table(
            {
                "series": pa.array([r.series for r in self.rows], pa.int32()),
                "metric": pa.array([r.metric for r in self.rows], pa.string()),
                "machine": pa.array([r.machine for r in self.rows], pa.string()),
                "part": pa.array([r.part for r in self.rows], pa.string()),
            }
        )


def find_machines(cpu_entities: Iterable[str]) -> list[str]:
    """Entities with the machine metric and no ancestor with it, sorted."""
    having = set(cpu_entities)
    return sorted(e for e in having if not any(a in having for a in ancestors(e)))


def machine_of(entity: str, machines: set[str]) -> str | None:
    """The machine that is `entity` or holds it; None outside every machine."""
    if entity in machines:
        return entity
    return next((a for a in ancestors(entity) if a in machines), None)


def select(keys: Iterable[tuple[int, str, str]]) -> Selection:
    """The report's series among `(series, entity, metric)` keys."""
    keys = [k for k in keys if k[2] in BY_NAME]
    machines = find_machines(e for _, e, m in keys if m == MACHINE_METRIC)
    known = set(machines)
    own: set[tuple[str, str]] = set()  # (machine, metric) measured on the machine itself
    placed: list[tuple[int, str, str, str]] = []
    for series, entity, metric in keys:
        machine = machine_of(entity, known)
        if machine is None:
            continue
        scope = BY_NAME[metric].scope
        is_own = entity == machine
        if (scope is Scope.MACHINE and not is_own) or (scope is Scope.GPU and is_own):
            continue
        if is_own:
            own.add((machine, metric))
        placed.append((series, metric, machine, entity))
    rows = tuple(
        SeriesRow(series, metric, machine, part)
        for series, metric, machine, part in sorted(placed)
        if part == machine or (machine, metric) not in own
    )
    cards = sorted({r.part for r in rows if BY_NAME[r.metric].scope is Scope.GPU})
    return Selection(tuple(machines), tuple(cards), rows)
