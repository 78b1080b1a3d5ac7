"""A report as one tidy CSV table, for spreadsheets and pivot tables.

One row per figure: `section, time, entity, metric, statistic, value, unit`. `time` is the
local start of a time slot (trends, CPU by hour, disk by hour or day, events) and empty
otherwise; `entity` is `fleet` for the whole room, else a machine, card or event's entity;
`value` is a number (full precision), empty when there is no data. The first rows
(section `report`) say which period, time zone and tier it is. UTF-8, comma-separated,
a header line, `\\r\\n` line ends (the csv module's, which spreadsheets expect).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from rackwatch.engine.reports.compose import local_iso
from rackwatch.engine.reports.content import EventRow, Report

HEADER = ("section", "time", "entity", "metric", "statistic", "value", "unit")
Row = tuple[str, str, str, str, str, Any, str]
FLEET = "fleet"


def _meta(report: Report) -> Iterator[Row]:
    p = report.period
    for statistic, value in (
        ("name", p.name),
        ("start", p.start),
        ("end", p.end),
        ("timezone", p.timezone),
        ("tier", report.source.tier),
        ("generated_at", report.generated_at),
        ("n_machines", report.n_machines),
        ("n_gpus", report.n_gpus),
    ):
        yield ("report", "", "", "", statistic, value, "")


def _metrics(report: Report) -> Iterator[Row]:
    for m in report.metrics:
        for statistic in ("average", "median", "min", "max"):
            yield ("metrics", "", FLEET, m.metric, statistic, getattr(m, statistic), m.unit)


def _cpu(report: Report) -> Iterator[Row]:
    cpu, metric = report.cpu, "cpu_utilization_ratio"
    yield ("cpu", "", FLEET, metric, "average", cpu.average, "ratio")
    if cpu.busiest_hour is not None:
        yield ("cpu", "", FLEET, metric, "busiest_hour", cpu.busiest_hour.hour, "hour")
        yield (
            "cpu",
            "",
            FLEET,
            metric,
            "busiest_hour_average",
            cpu.busiest_hour.cpu_utilization_ratio,
            "ratio",
        )
    if cpu.busiest_day is not None:
        yield (
            "cpu",
            cpu.busiest_day.start,
            FLEET,
            metric,
            "busiest_day",
            cpu.busiest_day.value,
            "ratio",
        )
    for name, server in (
        ("busiest_server", cpu.busiest_server),
        ("idlest_server", cpu.idlest_server),
    ):
        if server is not None:
            yield ("cpu", "", server.entity, metric, name, server.value, "ratio")
    for hour in cpu.by_hour:
        yield ("cpu_by_hour", f"{hour.hour:02d}:00", FLEET, metric, "average", hour.value, "ratio")
    for day in cpu.by_day:
        yield ("cpu_by_day", day.start, FLEET, metric, "average", day.value, "ratio")


def _memory_disk_network(report: Report) -> Iterator[Row]:
    mem, disk, net = report.memory, report.disk, report.network
    yield (
        "memory",
        "",
        FLEET,
        "memory_utilization_ratio",
        "average",
        mem.average_utilization_ratio,
        "ratio",
    )
    yield (
        "memory",
        "",
        FLEET,
        "memory_used_bytes",
        "average_per_machine",
        mem.average_used_bytes,
        "bytes",
    )
    yield ("memory", "", FLEET, "memory_used_bytes", "total", mem.total_used_bytes, "bytes")
    yield ("disk", "", FLEET, "disk_used_bytes", "total", disk.average_used_bytes, "bytes")
    yield (
        "disk",
        "",
        FLEET,
        "disk_utilization_ratio",
        "average",
        disk.average_utilization_ratio,
        "ratio",
    )
    section = f"disk_by_{disk.by}"
    for slot in disk.slots:
        yield (section, slot.start, FLEET, "disk_used_bytes", "total", slot.used_bytes, "bytes")
        yield (
            section,
            slot.start,
            FLEET,
            "disk_utilization_ratio",
            "average",
            slot.utilization_ratio,
            "ratio",
        )
    yield ("network", "", FLEET, "network_transmit_bytes", "up_total", net.up_bytes, "bytes")
    yield ("network", "", FLEET, "network_receive_bytes", "down_total", net.down_bytes, "bytes")
    yield (
        "network",
        "",
        FLEET,
        "network_transmit_bytes_per_second",
        "peak",
        net.peak_up_bytes_per_second,
        "bytes_per_second",
    )
    yield (
        "network",
        "",
        FLEET,
        "network_receive_bytes_per_second",
        "peak",
        net.peak_down_bytes_per_second,
        "bytes_per_second",
    )


GPU_RATES = (
    ("gpu_memory_free_bytes", "gpu_idle_rate"),
    ("gpu_memory_utilization_ratio", "gpu_low_memory_rate"),
)
"""(metric, statistic) of the two GPU rates, an attribute of the fleet, a server and a card."""


def _gpu(report: Report) -> Iterator[Row]:
    gpu = report.gpu
    for metric, statistic in GPU_RATES:
        yield ("gpu", "", FLEET, metric, statistic, getattr(gpu, statistic), "ratio")
    for s in gpu.servers:
        for metric, statistic in GPU_RATES:
            yield ("gpu_servers", "", s.entity, metric, statistic, getattr(s, statistic), "ratio")
    for card in gpu.cards:
        for metric, statistic, value in (
            *((m, st, getattr(card, st)) for m, st in GPU_RATES),
            ("gpu_utilization_ratio", "average", card.utilization_ratio),
            ("gpu_memory_utilization_ratio", "average", card.memory_utilization_ratio),
        ):
            yield ("gpu_cards", "", card.entity, metric, statistic, value, "ratio")


SERVER_FIELDS = (
    ("cpu_average", "cpu_utilization_ratio", "average", "ratio"),
    ("cpu_max", "cpu_utilization_ratio", "max", "ratio"),
    ("memory_used_bytes", "memory_used_bytes", "average", "bytes"),
    ("memory_utilization_ratio", "memory_utilization_ratio", "average", "ratio"),
    ("disk_used_bytes", "disk_used_bytes", "average", "bytes"),
    ("disk_utilization_ratio", "disk_utilization_ratio", "average", "ratio"),
    ("network_up_bytes", "network_transmit_bytes", "total", "bytes"),
    ("network_down_bytes", "network_receive_bytes", "total", "bytes"),
    ("power_watts", "power_watts", "average", "watts"),
    ("energy_kwh", "energy", "total", "kWh"),
    ("gpu_utilization_ratio", "gpu_utilization_ratio", "average", "ratio"),
    ("gpu_idle_rate", "gpu_memory_free_bytes", "gpu_idle_rate", "ratio"),
    ("gpu_low_memory_rate", "gpu_memory_utilization_ratio", "gpu_low_memory_rate", "ratio"),
)


def _servers(report: Report) -> Iterator[Row]:
    for s in report.servers:
        for field, metric, statistic, unit in SERVER_FIELDS:
            value = getattr(s, field)
            if value is not None:
                yield ("servers", "", s.entity, metric, statistic, value, unit)


def _event(section: str, row: EventRow) -> Row:
    return (section, row.start, row.entity, row.what, row.severity, row.duration_s, "s")


def _events_energy(report: Report) -> Iterator[Row]:
    e = report.events
    for row in e.alerts:
        yield _event("alerts", row)
    for row in e.incidents:
        yield _event("incidents", row)
    for row in e.faults:
        yield _event("faults", row)
    en = report.energy
    yield ("energy", "", "site", "energy", "energy_kwh", en.energy_kwh, "kWh")
    yield ("energy", "", "site", "energy", "it_energy_kwh", en.it_energy_kwh, "kWh")
    yield ("energy", "", "site", "energy", "cost", en.cost, en.currency or "")
    yield ("energy", "", "site", "energy", "pue", en.pue, "")


def _trends(report: Report, zone: ZoneInfo) -> Iterator[Row]:
    for trend in report.trends:
        highs = trend.high or [None] * len(trend.ts_ms)
        for ts, value, high in zip(trend.ts_ms, trend.value, highs, strict=True):
            when = local_iso(ts, zone)
            yield ("trend", when, FLEET, trend.metric, trend.statistic, value, trend.unit)
            if high is not None:
                yield ("trend", when, FLEET, trend.metric, "highest_series", high, trend.unit)


def rows(report: Report) -> Iterator[Row]:
    zone = ZoneInfo(report.period.timezone)
    yield from _meta(report)
    yield from _metrics(report)
    yield from _cpu(report)
    yield from _memory_disk_network(report)
    yield from _gpu(report)
    yield from _servers(report)
    yield from _events_energy(report)
    yield from _trends(report, zone)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def render_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for row in rows(report):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")
