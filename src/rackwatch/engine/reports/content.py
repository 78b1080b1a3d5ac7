"""What a report holds, as plain dataclasses; `Report.to_dict()` is the JSON document.

Keys are plain English snake_case (docs/REPORTS.md lists each with its definition). A
statistic with no data is None (null in JSON), never 0: 0 % CPU is a real reading.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PeriodInfo:
    kind: str
    name: str
    label: str
    first_day: str
    last_day: str
    timezone: str
    start: str
    """Local ISO 8601 with its offset."""
    end: str
    start_ms: int
    end_ms: int
    hours: float


@dataclass(frozen=True, slots=True)
class SourceInfo:
    tier: str
    """`1m` (a day's report) or `1h` (a week's, a month's)."""
    bucket_ms: int
    trend_bucket_ms: int


@dataclass(frozen=True, slots=True)
class MetricSummary:
    metric: str
    title: str
    unit: str
    scope: str
    n_series: int
    n_readings: int
    average: float | None
    median: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class ServerValue:
    entity: str
    value: float


@dataclass(frozen=True, slots=True)
class HourValue:
    hour: int
    """Local hour of the day, 0..23."""
    value: float | None


@dataclass(frozen=True, slots=True)
class TimeValue:
    start: str
    start_ms: int
    value: float | None


@dataclass(frozen=True, slots=True)
class BusiestHour:
    hour: int
    label: str
    cpu_utilization_ratio: float


@dataclass(frozen=True, slots=True)
class CpuSection:
    average: float | None
    busiest_hour: BusiestHour | None
    busiest_day: TimeValue | None
    """The local day of highest average CPU (week and month reports; None for a day)."""
    busiest_server: ServerValue | None
    idlest_server: ServerValue | None
    by_hour: list[HourValue]
    """Average CPU by local hour of the day, over every day of the period."""
    by_day: list[TimeValue]


@dataclass(frozen=True, slots=True)
class MemorySection:
    average_utilization_ratio: float | None
    average_used_bytes: float | None
    """Per machine: the mean over machines of each one's average."""
    total_used_bytes: float | None
    """The whole fleet's memory in use, averaged over the period."""


@dataclass(frozen=True, slots=True)
class DiskSlot:
    start: str
    start_ms: int
    used_bytes: float | None
    utilization_ratio: float | None


@dataclass(frozen=True, slots=True)
class DiskSection:
    by: str
    """`hour` (day and week reports) or `day` (month)."""
    average_used_bytes: float | None
    """The fleet's disk space in use, averaged over the period."""
    average_utilization_ratio: float | None
    slots: list[DiskSlot]


@dataclass(frozen=True, slots=True)
class NetworkSection:
    up_bytes: float | None
    """Bytes sent by every machine in the period (seed 004's network_up_total)."""
    down_bytes: float | None
    peak_up_bytes_per_second: float | None
    peak_down_bytes_per_second: float | None


@dataclass(frozen=True, slots=True)
class CardRow:
    entity: str
    server: str
    utilization_ratio: float | None
    memory_utilization_ratio: float | None
    gpu_idle_rate: float | None
    gpu_low_memory_rate: float | None
    observed_hours: float


@dataclass(frozen=True, slots=True)
class GpuServerRow:
    entity: str
    n_cards: int
    gpu_idle_rate: float | None
    gpu_low_memory_rate: float | None


@dataclass(frozen=True, slots=True)
class GpuSection:
    n_cards: int
    idle_free_bytes: int
    low_memory_ratio: float
    gpu_idle_rate: float | None
    """Fleet: the mean over cards of the share of time with more than 8 GiB free."""
    gpu_low_memory_rate: float | None
    """Fleet: the mean over cards of the share of time using under 10 % of their memory."""
    servers: list[GpuServerRow]
    cards: list[CardRow]


@dataclass(frozen=True, slots=True)
class ServerRow:
    entity: str
    cpu_average: float | None
    cpu_max: float | None
    memory_used_bytes: float | None
    memory_utilization_ratio: float | None
    disk_used_bytes: float | None
    disk_utilization_ratio: float | None
    network_up_bytes: float | None
    network_down_bytes: float | None
    power_watts: float | None
    energy_kwh: float | None
    n_gpus: int
    gpu_utilization_ratio: float | None
    gpu_idle_rate: float | None
    gpu_low_memory_rate: float | None


@dataclass(frozen=True, slots=True)
class EventRow:
    kind: str
    """`alert`, `incident` or `fault`."""
    entity: str
    what: str
    """The alert's rule, the incident's cause, the fault's kind."""
    severity: str
    start: str
    start_ms: int
    end: str | None
    end_ms: int | None
    """None: still open at the end of the period."""
    duration_s: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class EventsSection:
    n_alerts: int
    n_incidents: int
    n_faults: int
    alerts: list[EventRow]
    incidents: list[EventRow]
    faults: list[EventRow]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EnergySection:
    available: bool
    energy_kwh: float | None
    cost: float | None
    currency: str | None
    pue: float | None
    it_energy_kwh: float | None
    """The machines' own `power_watts` integrated over the period (average x time)."""
    detail: dict[str, Any] | None
    """The energy accounting's own document (per group rows, fans, facility)."""
    note: str | None


@dataclass(frozen=True, slots=True)
class Trend:
    metric: str
    title: str
    unit: str
    statistic: str
    """`average` (of the readings) or `total` (sum of the series' means)."""
    bucket_ms: int
    ts_ms: list[int]
    value: list[float | None]
    high: list[float | None] | None
    """For an average: the highest single series' mean in the bucket."""


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    period: PeriodInfo
    generated_at: str
    generated_at_ms: int
    source: SourceInfo
    n_machines: int
    n_gpus: int
    metrics: list[MetricSummary]
    cpu: CpuSection
    memory: MemorySection
    disk: DiskSection
    network: NetworkSection
    gpu: GpuSection
    servers: list[ServerRow]
    events: EventsSection
    energy: EnergySection
    trends: list[Trend]
    notes: list[str]

    @property
    def name(self) -> str:
        return self.period.name

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (plain types only)."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out = {"report": self.period.kind, "name": self.period.name, **out}
        return out
