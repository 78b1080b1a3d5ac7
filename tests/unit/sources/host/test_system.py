"""HostCollector against the real psutil of this machine (no mocking), plus single psutil
functions replaced where a case cannot be produced for real: a counter going backwards, a
call that raises, sensors and fans (most test machines have none), odd partitions."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from rackwatch.model.catalogue import METRICS
from rackwatch.model.entity import validate
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.host.system import HostCollector, disk_segment
from rackwatch.sources.readings import Reading, segment, to_batch

RATES = {
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
    "network_receive_bytes_per_second",
    "network_transmit_bytes_per_second",
}
RATIOS = {m for m in METRICS if m.endswith("_ratio")}
BYTES = {m for m in METRICS if "bytes" in m}

Temp = namedtuple("Temp", "label current high critical")
Fan = namedtuple("Fan", "label current")
Part = namedtuple("Part", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
DiskIo = namedtuple("DiskIo", "read_bytes write_bytes")
NetIo = namedtuple("NetIo", "bytes_sent bytes_recv")


def burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def by_key(readings: list[Reading]) -> dict[tuple[str, str], float]:
    return {(r.entity, r.metric): r.value for r in readings}


def of(readings: list[Reading], metric: str) -> dict[str, float]:
    return {r.entity: r.value for r in readings if r.metric == metric}


class StepClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def two_calls() -> tuple[HostCollector, list[Reading], list[Reading]]:
    collector = HostCollector("test-host")
    first = collector.collect()
    burn_cpu(0.05)
    second = collector.collect()
    return collector, first, second


# ------------------------------------------------------------------ the real machine


def test_every_reading_is_a_catalogue_metric_on_a_valid_host_entity_and_finite(
    two_calls: tuple[HostCollector, list[Reading], list[Reading]],
) -> None:
    collector, first, second = two_calls
    assert collector.entity == "host/test-host"
    for readings in (first, second):
        assert readings
        keys = [(r.entity, r.metric) for r in readings]
        assert len(keys) == len(set(keys)), "one value per series per collection"
        for r in readings:
            assert r.metric in METRICS, r
            assert validate(r.entity) and (
                r.entity == collector.entity or r.entity.startswith(collector.entity + "/")
            ), r
            assert isinstance(r.value, float) and math.isfinite(r.value), r
            if r.metric in RATIOS:
                assert 0.0 <= r.value <= 1.0, r
            if r.metric in BYTES or r.metric.endswith(("_count", "_seconds", "_hertz")):
                assert r.value >= 0.0, r
    assert collector.n_errors == 0


def test_the_host_readings_agree_with_independent_reads(
    two_calls: tuple[HostCollector, list[Reading], list[Reading]],
) -> None:
    collector, _, readings = two_calls
    host = {m: v for (e, m), v in by_key(readings).items() if e == collector.entity}
    for metric in (
        "load_average_1m",
        "load_average_5m",
        "load_average_15m",
        "memory_used_bytes",
        "memory_available_bytes",
        "memory_utilization_ratio",
        "swap_used_bytes",
        "uptime_seconds",
        "process_count",
        "user_session_count",
    ):
        assert metric in host, metric
    total = psutil.virtual_memory().total
    assert host["memory_used_bytes"] + host["memory_available_bytes"] == total
    # "available" (what `free` calls it), not psutil's "free": other processes move it a bit
    assert abs(host["memory_available_bytes"] - psutil.virtual_memory().available) < 2**28
    assert host["memory_utilization_ratio"] == pytest.approx(host["memory_used_bytes"] / total)
    assert abs(host["uptime_seconds"] - (time.time() - psutil.boot_time())) < 5.0
    assert host["process_count"] >= 1 and abs(host["process_count"] - len(psutil.pids())) < 100
    assert host["user_session_count"] == len(psutil.users())
    swap = psutil.swap_memory()
    assert ("swap_utilization_ratio" in host) == (swap.total > 0)
    freq = psutil.cpu_freq()
    if freq is not None and freq.current > 0:
        assert host["cpu_frequency_hertz"] == pytest.approx(freq.current * 1e6, rel=0.5)


def test_cpu_utilisation_is_meaningful_on_the_first_call_total_and_per_core() -> None:
    collector = HostCollector("h")
    burn_cpu(0.2)  # ticks are 10 ms: this process alone keeps some core busy for 20 of them
    readings = collector.collect()
    cpu = of(readings, "cpu_utilization_ratio")
    n_cores = len(psutil.cpu_times(percpu=True))
    assert set(cpu) == {"host/h"} | {f"host/h/cpu{k}" for k in range(n_cores)}
    assert 0.0 < cpu["host/h"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in cpu.values())
    assert max(cpu[f"host/h/cpu{k}"] for k in range(n_cores)) > 0.0


def test_disks_used_and_free_fit_the_file_system_size(
    two_calls: tuple[HostCollector, list[Reading], list[Reading]],
) -> None:
    collector, _, readings = two_calls
    disks = {i["entity"]: i for i in collector.inventory() if i["kind"] == "disk"}
    used, free = of(readings, "disk_used_bytes"), of(readings, "disk_free_bytes")
    ratio = of(readings, "disk_utilization_ratio")
    assert set(used) == set(free) == set(ratio) == set(disks)
    mounted = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    if "/" in mounted:
        assert f"{collector.entity}/disk-root" in disks
    for entity, item in disks.items():
        assert entity == f"{collector.entity}/{disk_segment(item['mountpoint'])}"
        total = item["total_bytes"]
        # df's view: the blocks reserved for root are neither used nor free
        assert 0 < used[entity] + free[entity] <= total
        assert ratio[entity] == pytest.approx(used[entity] / (used[entity] + free[entity]))
        st = os.statvfs(item["mountpoint"])
        assert st.f_blocks * st.f_frsize == total
        tolerance = max(0.01 * total, 256 * 2**20)  # other writers meanwhile
        assert abs(used[entity] - (st.f_blocks - st.f_bfree) * st.f_frsize) < tolerance
        assert abs(free[entity] - st.f_bavail * st.f_frsize) < tolerance


def test_rates_are_absent_on_the_first_call_and_present_and_non_negative_on_the_second(
    tmp_path: Path,
) -> None:
    collector = HostCollector("h")
    first = collector.collect()
    assert not [r for r in first if r.metric in RATES]
    with open(tmp_path / "blob", "wb") as blob:  # some disk writes (not needed to pass)
        blob.write(os.urandom(2**20))
        blob.flush()
        os.fsync(blob.fileno())
    second = collector.collect()
    inventory = collector.inventory()
    nics = {i["entity"] for i in inventory if i["kind"] == "nic"}
    totals = of(second, "network_receive_bytes_total")
    assert nics >= set(totals)
    assert "host/h/net-lo" not in totals
    for metric in ("network_receive_bytes_per_second", "network_transmit_bytes_per_second"):
        assert set(of(second, metric)) == set(totals), metric
    with_io = {i["entity"] for i in inventory if i["kind"] == "disk" and i["io_device"]}
    for metric in ("disk_read_bytes_per_second", "disk_write_bytes_per_second"):
        assert set(of(second, metric)) == with_io, metric
    root = next((i for i in inventory if i["entity"] == "host/h/disk-root"), None)
    if root is not None and os.path.basename(root["device"]) in (
        psutil.disk_io_counters(perdisk=True) or {}
    ):
        assert root["io_device"] == os.path.basename(root["device"])
    assert all(r.value >= 0.0 for r in second if r.metric in RATES)


def test_a_collection_interns_into_a_series_registry() -> None:
    collector = HostCollector("h")
    readings = collector.collect()
    registry = SeriesRegistry()
    batch = to_batch(readings, registry, 1_767_225_600_000)
    assert len(batch) == len(readings) == len(registry)
    assert set(batch.ts.tolist()) == {1_767_225_600_000}
    assert {tuple(registry.key(i)) for i in batch.series.tolist()} == {
        (r.entity, r.metric) for r in readings
    }
    again = to_batch(collector.collect(), registry, 1_767_225_605_000)
    assert len(registry) >= len(readings)  # the second call adds the rates and CPU only
    # A core whose clock did not tick (10 ms) between two back-to-back calls has no
    # utilisation this time; every other series must map to the same id again.
    steady = {i for i in batch.series.tolist() if registry.key(i)[1] != "cpu_utilization_ratio"}
    assert steady and steady <= set(again.series.tolist())


def test_the_name_is_one_entity_segment_defaulting_to_the_hostname() -> None:
    assert HostCollector().entity == f"host/{segment(socket.gethostname())}"
    assert HostCollector("rack 3 / db!").entity == "host/rack_3_db"


def test_the_inventory_holds_the_static_facts_as_json() -> None:
    collector = HostCollector("h")
    items = collector.inventory()
    json.dumps(items, allow_nan=False)  # JSON-friendly: no NaN, no tuples of odd types
    entities = [i["entity"] for i in items]
    assert len(entities) == len(set(entities))
    assert all(validate(e) and (e == "host/h" or e.startswith("host/h/")) for e in entities)
    kinds = {i["kind"] for i in items}
    assert kinds <= {"host", "cpu", "disk", "nic", "sensor", "fan"}
    (host,) = (i for i in items if i["kind"] == "host")
    assert host["entity"] == "host/h" and host["hostname"] == socket.gethostname()
    assert host["logical_cores"] == psutil.cpu_count()
    assert host["memory_total_bytes"] == psutil.virtual_memory().total
    assert host["swap_total_bytes"] == psutil.swap_memory().total
    assert abs(host["boot_time_ms"] - psutil.boot_time() * 1000) < 2_000
    assert host["psutil_version"] == psutil.__version__ and host["os"] and host["architecture"]
    for addresses in host["addresses"].values():
        assert addresses and not {"127.0.0.1", "::1"} & set(addresses)
    assert "lo" not in host["addresses"]
    cores = [i for i in items if i["kind"] == "cpu"]
    assert [c["entity"] for c in cores] == [f"host/h/cpu{k}" for k in range(psutil.cpu_count())]
    for disk in (i for i in items if i["kind"] == "disk"):
        assert disk["total_bytes"] > 0 and disk["mountpoint"] and disk["fstype"]
    nics = {i["interface"] for i in items if i["kind"] == "nic"}
    assert "lo" not in nics
    assert nics == {n for n in psutil.net_if_stats() if n != "lo" and not n.startswith("veth")}
    assert collector.n_errors == 0


# ------------------------------------------------------------------ one psutil function replaced


def test_a_failing_part_is_left_out_counted_and_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def denied() -> Any:
        raise PermissionError("no /proc/loadavg here")

    monkeypatch.setattr(psutil, "getloadavg", denied)
    collector = HostCollector("h")
    with caplog.at_level(logging.DEBUG, logger="rackwatch.sources.host.system"):
        first, second = collector.collect(), collector.collect()
    for readings in (first, second):
        metrics = {r.metric for r in readings}
        assert not {"load_average_1m", "load_average_5m", "load_average_15m"} & metrics
        assert {"memory_used_bytes", "uptime_seconds", "process_count"} <= metrics
    assert collector.n_errors == 2
    about = [r for r in caplog.records if "getloadavg" in r.getMessage()]
    assert [r.levelno for r in about] == [logging.WARNING, logging.DEBUG]


def test_a_part_the_platform_lacks_is_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def not_here(percpu: bool = False) -> Any:
        calls.append(percpu)
        raise NotImplementedError("no cpufreq")

    monkeypatch.setattr(psutil, "cpu_freq", not_here)
    collector = HostCollector("h")
    for _ in range(3):
        readings = collector.collect()
        assert "cpu_frequency_hertz" not in {r.metric for r in readings}
        assert "memory_used_bytes" in {r.metric for r in readings}
    assert calls == [False] and collector.n_errors == 1
    (host,) = (i for i in collector.inventory() if i["kind"] == "host")
    assert host["max_frequency_hertz"] is None  # the inventory does without it too


def test_a_counter_that_goes_backwards_gives_no_rate_and_becomes_the_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counters = iter(
        [
            {"eth0": NetIo(0, 1_000), "lo": NetIo(5, 5)},  # first call: no rates
            {"eth0": NetIo(400, 2_000), "lo": NetIo(50, 50)},  # +2 s
            {"eth0": NetIo(800, 300)},  # receive reset (the interface came back): none
            {"eth0": NetIo(800, 1_300)},  # +2 s from the new baseline
        ]
    )
    monkeypatch.setattr(psutil, "net_io_counters", lambda **_: next(counters))
    clock = StepClock()
    collector = HostCollector("h", clock=clock)
    rates: list[dict[tuple[str, str], float]] = []
    for _ in range(4):
        readings = by_key(collector.collect())
        rates.append({k: v for k, v in readings.items() if k[1] in RATES and "/net-" in k[0]})
        assert not [k for k in readings if k[0] == "host/h/net-lo"]
        clock.now += 2.0
    rx, tx = "network_receive_bytes_per_second", "network_transmit_bytes_per_second"
    assert rates[0] == {}
    assert rates[1] == {("host/h/net-eth0", rx): 500.0, ("host/h/net-eth0", tx): 200.0}
    assert rates[2] == {("host/h/net-eth0", tx): 200.0}
    assert rates[3] == {("host/h/net-eth0", rx): 500.0, ("host/h/net-eth0", tx): 0.0}
    assert collector.n_errors == 0


def test_disks_one_mount_per_device_images_skipped_an_unreadable_mount_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    partitions = [
        Part("/dev/sdz1", "/srv/bind", "ext4", "rw"),  # a bind mount of / : same device
        Part("/dev/sdz1", "/", "ext4", "rw"),
        Part("/dev/sdz2", "/boot/efi", "vfat", "rw"),
        Part("/dev/sdz3", "/secret", "xfs", "rw"),
        Part("/dev/loop3", "/snap/core/17", "squashfs", "ro"),
    ]

    def usage(path: str) -> Usage:
        if path == "/secret":
            raise PermissionError(path)
        return Usage(1000, 250, 700, 26.3)

    io = iter(
        [
            {"sdz1": DiskIo(0, 0), "sdz2": DiskIo(10, 10), "loop3": DiskIo(0, 0)},
            {"sdz1": DiskIo(3_000, 1_000), "sdz2": DiskIo(5, 10), "loop3": DiskIo(9, 9)},
        ]
    )
    monkeypatch.setattr(psutil, "disk_partitions", lambda **_: partitions)
    monkeypatch.setattr(psutil, "disk_usage", usage)
    monkeypatch.setattr(psutil, "disk_io_counters", lambda **_: next(io))
    clock = StepClock()
    collector = HostCollector("h", clock=clock)
    collector.collect()
    clock.now += 1.0
    readings = by_key(collector.collect())
    disks = {e for e, m in readings if "/disk-" in e}
    assert disks == {"host/h/disk-root", "host/h/disk-boot_efi"}
    assert readings[("host/h/disk-root", "disk_utilization_ratio")] == pytest.approx(250 / 950)
    assert readings[("host/h/disk-root", "disk_read_bytes_per_second")] == 3_000.0
    assert readings[("host/h/disk-root", "disk_write_bytes_per_second")] == 1_000.0
    assert ("host/h/disk-boot_efi", "disk_read_bytes_per_second") not in readings  # backwards
    assert readings[("host/h/disk-boot_efi", "disk_write_bytes_per_second")] == 0.0
    assert collector.n_errors == 2  # /secret, once per call


@pytest.fixture
def no_sensor_functions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delattr(psutil, "sensors_temperatures", raising=False)
    monkeypatch.delattr(psutil, "sensors_fans", raising=False)
    yield


@pytest.mark.usefixtures("no_sensor_functions")
def test_sensors_and_fans_are_absent_cleanly_where_psutil_has_none() -> None:
    collector = HostCollector("h")
    readings = collector.collect()
    assert readings
    assert not {"temperature_celsius", "fan_rpm"} & {r.metric for r in readings}
    assert not {"sensor", "fan"} & {i["kind"] for i in collector.inventory()}
    assert collector.n_errors == 0


def fake(groups: dict[str, list[Any]]) -> Callable[..., dict[str, list[Any]]]:
    return lambda **_: groups


def test_sensors_and_fans_are_named_chip_label_deduplicated_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temps = {
        "coretemp": [Temp("Package id 0", 51.0, 80.0, 100.0), Temp("Core 0", 49.0, 80.0, None)],
        "nvme": [Temp("Composite", 38.9, 84.8, 89.8), Temp("Composite", 41.9, 84.8, 89.8)],
        "acpitz": [Temp("", 27.8, None, None), Temp("", 255.0, None, None)],
        "broken": [Temp("x", math.nan, None, None), Temp("y", -128.0, None, None)],
    }
    fans = {"dell_smm": [Fan("Processor Fan", 2400), Fan("Other Fan", 65535)]}
    monkeypatch.setattr(psutil, "sensors_temperatures", fake(temps))
    monkeypatch.setattr(psutil, "sensors_fans", lambda: fans)
    collector = HostCollector("h")
    readings = collector.collect()
    assert of(readings, "temperature_celsius") == {
        "host/h/sensor-coretemp_Package_id_0": 51.0,
        "host/h/sensor-coretemp_Core_0": 49.0,
        "host/h/sensor-nvme_Composite": 38.9,
        "host/h/sensor-nvme_Composite_2": 41.9,
        "host/h/sensor-acpitz": 27.8,  # the second acpitz (255: no reading) is left out
    }
    assert of(readings, "fan_rpm") == {"host/h/fan-dell_smm_Processor_Fan": 2400.0}
    inventory = {i["entity"]: i for i in collector.inventory() if i["kind"] in ("sensor", "fan")}
    assert inventory["host/h/sensor-nvme_Composite_2"] == {
        "entity": "host/h/sensor-nvme_Composite_2",
        "kind": "sensor",
        "chip": "nvme",
        "label": "Composite",
        "high_celsius": 84.8,
        "critical_celsius": 89.8,
    }
    assert inventory["host/h/fan-dell_smm_Other_Fan"]["kind"] == "fan"  # a fact, not a reading
    json.dumps(list(inventory.values()), allow_nan=False)
    assert collector.n_errors == 0


def test_a_core_going_offline_restarts_the_cpu_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    Times = namedtuple("Times", "user system idle iowait")
    samples = iter(
        [
            [Times(0, 0, 0, 0), Times(0, 0, 0, 0)],  # __init__
            [Times(1, 0, 3, 0), Times(2, 0, 1, 1)],  # cpu0 1/4 busy, cpu1 2/4
            [Times(1, 0, 3, 0)],  # cpu1 went offline: no reading, a new baseline
            [Times(4, 0, 3, 0)],  # 3/3 busy
        ]
    )
    monkeypatch.setattr(psutil, "cpu_times", lambda **_: next(samples))
    collector = HostCollector("h")
    cpu = [of(collector.collect(), "cpu_utilization_ratio") for _ in range(3)]
    assert cpu[0] == {"host/h": 3 / 8, "host/h/cpu0": 0.25, "host/h/cpu1": 0.5}
    assert cpu[1] == {}
    assert cpu[2] == {"host/h": 1.0, "host/h/cpu0": 1.0}
    assert collector.n_errors == 0
