"""Every report statistic on the small room of report_support.py, whose answers are worked out
by hand (the arithmetic is in each test)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from report_support import DAY, GIB, A, B, H, at, open_room

from rackwatch.engine.reports import build_report, period_of
from rackwatch.engine.reports.content import Report

UTC = ZoneInfo("UTC")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = open_room(tmp_path_factory.mktemp("room"))
    yield store
    store.close()


@pytest.fixture(scope="module")
def day(store) -> Report:
    return build_report(store, period_of("day", DAY, UTC), now_ms=at(0, day=2))


@pytest.fixture(scope="module")
def month(store) -> Report:
    return build_report(store, period_of("month", DAY, UTC), now_ms=at(0, day=2))


def metric(report: Report, name: str):
    return next(m for m in report.metrics if m.metric == name)


def server(report: Report, entity: str):
    return next(s for s in report.servers if s.entity == entity)


def test_machines_are_the_top_entities_with_cpu(day):
    # host/h1/cpu0 is a core of host/h1; the PDU and fans are not machines
    assert [s.entity for s in day.servers] == [A, B, H]
    assert day.n_machines == 3 and day.n_gpus == 3
    assert day.source.tier == "1m" and day.source.trend_bucket_ms == 300_000


def test_cpu_average_median_min_max(day):
    cpu = metric(day, "cpu_utilization_ratio")
    # readings: A 0.1 0.3 0.4 0.8 1.0, B 0.1 0.5 0.7, H 0.0 -> 3.9 / 9 (the core's 1.0 is out)
    assert cpu.average == pytest.approx(3.9 / 9)
    assert cpu.n_readings == 9 and cpu.n_series == 3
    # bucket averages: 0.2 0.4 0.9 | 0.1 0.5 0.7 | 0.0 -> median 0.4
    assert cpu.median == pytest.approx(0.4)
    assert cpu.min == 0.0 and cpu.max == 1.0
    assert day.cpu.average == pytest.approx(3.9 / 9)


def test_busiest_hour_and_servers(day):
    # hour 10: 0.1 0.3 0.4 0.1 0.0 -> 0.18; hour 14: 0.8 1.0 0.5 0.7 -> 0.75
    hours = {h.hour: h.value for h in day.cpu.by_hour}
    assert hours[10] == pytest.approx(0.18) and hours[14] == pytest.approx(0.75)
    assert hours[3] is None
    assert day.cpu.busiest_hour is not None
    assert (day.cpu.busiest_hour.hour, day.cpu.busiest_hour.label) == (14, "14:00-15:00")
    assert day.cpu.busiest_hour.cpu_utilization_ratio == pytest.approx(0.75)
    # per machine: A 2.6/5 = 0.52, B 1.3/3, H 0.0
    assert day.cpu.busiest_server.entity == A
    assert day.cpu.busiest_server.value == pytest.approx(0.52)
    assert day.cpu.idlest_server.entity == H and day.cpu.idlest_server.value == 0.0
    assert server(day, B).cpu_average == pytest.approx(1.3 / 3)
    assert server(day, A).cpu_max == 1.0
    assert day.cpu.busiest_day is None and day.cpu.by_day == []


def test_memory_average(day):
    assert day.memory.average_utilization_ratio == pytest.approx(0.375)  # (0.5 + 0.25) / 2
    # per machine: A (4 + 6) / 2 = 5 GiB, B 2 GiB -> 3.5 GiB
    assert day.memory.average_used_bytes == pytest.approx(3.5 * GIB)
    # the fleet's total: 10:00 4 + 2 GiB, 11:00 6 GiB (only A reported) -> 6 GiB
    assert day.memory.total_used_bytes == pytest.approx(6 * GIB)
    used = metric(day, "memory_used_bytes")
    assert (used.average, used.median, used.min, used.max) == (4 * GIB, 4 * GIB, 2 * GIB, 6 * GIB)
    assert server(day, A).memory_used_bytes == 5 * GIB


def test_disk_by_hour(day):
    disk = day.disk
    assert disk.by == "hour"
    # 10:00 A root 100 + A data 10 + B root 50 = 160 GB; 10:30 A root 200 GB -> hour 10: 180 GB
    # 12:00 B root 70 GB
    assert [(s.start, s.used_bytes, s.utilization_ratio) for s in disk.slots] == [
        ("2026-03-05T10:00+00:00", pytest.approx(180e9), pytest.approx(0.375)),
        ("2026-03-05T12:00+00:00", pytest.approx(70e9), None),
    ]
    assert disk.average_used_bytes == pytest.approx((160e9 + 200e9 + 70e9) / 3)
    assert disk.average_utilization_ratio == pytest.approx(0.375)
    # a machine's disks add up: A root averages 150 GB, data 10 GB
    assert server(day, A).disk_used_bytes == pytest.approx(160e9)
    assert server(day, B).disk_used_bytes == pytest.approx(60e9)


def test_network_totals(day):
    net = day.network
    # A's NIC sends 1000 B/s for two minutes; B's own series 2000 B/s for one minute (its
    # NIC's 9999 B/s is not counted twice)
    assert net.up_bytes == pytest.approx(1000 * 120 + 2000 * 60)
    assert net.down_bytes == pytest.approx(500 * 60)
    assert net.peak_up_bytes_per_second == pytest.approx(3000)  # 10:00: 1000 + 2000
    assert server(day, A).network_up_bytes == pytest.approx(120_000)
    assert server(day, A).network_down_bytes == pytest.approx(30_000)
    assert server(day, B).network_up_bytes == pytest.approx(120_000)
    assert server(day, B).network_down_bytes is None


def test_gpu_idle_rates_per_card_server_and_fleet(day):
    cards = {c.entity: c for c in day.gpu.cards}
    # A/gpu0: free 10 4 9 8 GiB -> 2 of 4 above 8 GiB; use 0.05 0.5 0.5 0.10 -> 1 of 4 under 10 %
    assert cards[f"{A}/gpu0"].gpu_idle_rate == pytest.approx(0.5)
    assert cards[f"{A}/gpu0"].gpu_low_memory_rate == pytest.approx(0.25)
    assert cards[f"{A}/gpu0"].utilization_ratio == pytest.approx(0.4)
    assert cards[f"{A}/gpu0"].observed_hours == pytest.approx(4 / 60)
    # A/gpu1: buckets average 20, 9, 7 GiB (each bucket judged by its average) -> 2 of 3
    assert cards[f"{A}/gpu1"].gpu_idle_rate == pytest.approx(2 / 3)
    assert cards[f"{A}/gpu1"].gpu_low_memory_rate == 1.0
    assert cards[f"{B}/gpu0"].gpu_idle_rate == 0.0
    servers = {s.entity: s for s in day.gpu.servers}
    assert servers[A].n_cards == 2
    assert servers[A].gpu_idle_rate == pytest.approx((0.5 + 2 / 3) / 2)
    assert servers[A].gpu_low_memory_rate == pytest.approx((0.25 + 1.0) / 2)
    assert servers[B].gpu_idle_rate == 0.0
    assert day.gpu.gpu_idle_rate == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert day.gpu.gpu_low_memory_rate == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert day.gpu.idle_free_bytes == 8 * GIB and day.gpu.low_memory_ratio == 0.10
    assert server(day, A).gpu_idle_rate == servers[A].gpu_idle_rate
    assert server(day, H).n_gpus == 0 and server(day, H).gpu_idle_rate is None


def test_power_energy_and_temperatures(day):
    power = metric(day, "power_watts")
    # A 300 W twice, B 600 W (its samples of the days around, and the PDU's 5 kW, are out)
    assert (power.average, power.max, power.n_series) == (400.0, 600.0, 2)
    assert server(day, A).energy_kwh == pytest.approx(300 * 120 / 3.6e6)
    assert server(day, B).energy_kwh == pytest.approx(600 * 60 / 3.6e6)
    assert day.energy.it_energy_kwh == pytest.approx(0.02)
    assert day.energy.available is False and day.energy.energy_kwh == pytest.approx(0.02)
    assert day.energy.cost is None and "tariff" in (day.energy.note or "")
    assert metric(day, "inlet_temperature_celsius").average == 22.0


def test_events_with_durations(day):
    ev = day.events
    assert (ev.n_alerts, ev.n_incidents, ev.n_faults) == (2, 1, 1)
    first, second = ev.alerts
    assert (first.entity, first.what, first.severity, first.duration_s) == (
        A,
        "cpu-hot",
        "warning",
        1800.0,
    )
    assert first.start == "2026-03-05T09:00:00+00:00"
    assert (second.entity, second.end, second.duration_s) == (B, None, None)  # still open
    (incident,) = ev.incidents
    assert (incident.what, incident.severity, incident.duration_s) == (
        "fan_failure",
        "critical",
        600.0,
    )
    (fault,) = ev.faults
    assert (fault.entity, fault.what, fault.duration_s) == (f"{A}/fan1", "fan_stop", 300.0)


def test_trends_in_five_minute_points_from_the_minute_tier(day):
    trends = {t.metric: t for t in day.trends}
    cpu = trends["cpu_utilization_ratio"]
    assert cpu.bucket_ms == 300_000 and len(cpu.ts_ms) == 288
    ten = cpu.ts_ms.index(at(10))
    # 10:00-10:05: readings 0.1 0.3 0.4 0.1 0.0 -> 0.18; highest bucket average 0.4 (A 10:01)
    assert cpu.value[ten] == pytest.approx(0.18)
    assert cpu.high is not None and cpu.high[ten] == pytest.approx(0.4)
    assert cpu.value[0] is None
    up = trends["network_transmit_bytes_per_second"]
    assert up.statistic == "total" and up.high is None
    assert up.value[ten] == pytest.approx(2000)  # the fleet's 3000 then 1000 B/s


def test_month_from_the_hour_tier(month):
    assert month.source.tier == "1h" and month.source.trend_bucket_ms == 3_600_000
    # busiest day and server are the same; the day's CPU: 3.9 / 9
    assert month.cpu.busiest_day is not None
    assert month.cpu.busiest_day.start == "2026-03-05"
    assert month.cpu.busiest_day.value == pytest.approx(3.9 / 9)
    assert month.cpu.busiest_server.entity == A
    assert month.disk.by == "day"
    # hour 10: A root (100 + 200) / 2 + A data 10 + B root 50 = 210 GB; hour 12: 70 GB
    (slot,) = month.disk.slots
    assert (slot.start, slot.used_bytes) == ("2026-03-05", pytest.approx(140e9))
    # hourly buckets: A 0.2667 0.9, B 0.1 0.6, H 0.0 -> median 0.2667
    assert metric(month, "cpu_utilization_ratio").median == pytest.approx(0.8 / 3)
    # an hour's average rate holds for the whole hour: (1000 + 2000) B/s x 3600 s
    assert month.network.up_bytes == pytest.approx(3000 * 3600)
    assert len(month.trends[0].ts_ms) == 31 * 24


def test_an_empty_period(store):
    report = build_report(store, period_of("day", dt.date(2026, 1, 1), UTC))
    assert report.servers[0].cpu_average is None
    assert report.cpu.busiest_server is None and report.cpu.busiest_hour is None
    assert report.metrics == [] and report.trends == []
    assert report.notes[0] == "No machine reported in this period."
