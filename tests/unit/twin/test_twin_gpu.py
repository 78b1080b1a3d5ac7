"""The GPU fleet (issue 12): GPU servers whose jobs drive the cards, the hosts and the room."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.model import METRICS, EventKind
from rackwatch.sources.host.gpu import GpuSample, gpu_readings
from rackwatch.sources.host.system import disk_segment
from rackwatch.twin import GPU_PRESETS, PRESETS, SCENARIOS, Twin, TwinFrame
from rackwatch.twin.gpus import (
    DISK_METRICS,
    GPU_METRICS,
    HOST_MEMORY_METRICS,
    NIC_METRICS,
    draw_gpu_hardware,
)
from rackwatch.twin.jobs import SLOTS_PER_CARD, USERS, JobParams
from rackwatch.twin.sensors import NOISE

DAY = 17280
HOUR = 720


@pytest.fixture(scope="module")
def day() -> tuple[Twin, TwinFrame]:
    """A weekday (2026-01-01 is a Thursday) of gpu-fleet, fans held at medium."""
    twin = Twin.from_scenario("gpu-fleet", seed=1)
    return twin, twin.run(DAY)


def _block(twin: Twin, frame: TwinFrame, metric: str) -> np.ndarray:
    return frame.values[:, twin.layout.blocks[metric]]


def _jobs(twin: Twin, frame: TwinFrame) -> list[dict[str, Any]]:
    """Every job that started in the frame: server, cards, rows it ran, memory per card."""
    step = twin.step_ms
    jobs = []
    for e in frame.events:
        if e.kind != EventKind.JOB_STARTED:
            continue
        assert e.end_ts is not None
        jobs.append(
            {
                "server": twin.topology.server_index[e.entity],
                "cards": e.attributes["gpus"],
                "start": (e.ts - twin.start_ms) // step,
                "end": (e.end_ts - twin.start_ms) // step,
                "memory": e.attributes["gpu_memory_bytes"],
                "attributes": e.attributes,
            }
        )
    return jobs


# --- scenarios, names, inventory --------------------------------------------------------------


def test_gpu_scenarios_are_listed_and_kept_out_of_the_plain_presets() -> None:
    assert {"gpu-fleet", "gpu-fleet-large"} <= set(SCENARIOS)
    assert not set(GPU_PRESETS) & set(PRESETS)  # the evaluation draws its rooms from PRESETS
    small, large = Twin.from_scenario("gpu-fleet"), Twin.from_scenario("gpu-fleet-large")
    assert (small.topology.n_servers, small.topology.n_racks) == (16, 2)
    assert (large.topology.n_servers, large.topology.n_racks) == (64, 7)
    result = CliRunner().invoke(cli, ["scenarios"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "gpu-fleet " in result.output and "gpu-fleet-large" in result.output


def test_card_series_are_named_as_the_gpu_collector_names_them() -> None:
    twin = Twin("gpu-fleet", clusters=2)
    hw = twin.topology.gpus
    assert hw is not None
    full = GpuSample(
        memory_total_bytes=100.0,
        memory_used_bytes=25.0,
        memory_free_bytes=75.0,
        utilization_percent=50.0,
        temperature_celsius=60.0,
        power_watts=200.0,
        power_limit_watts=300.0,
    )  # no fan: the boards are passive, as the twin's are
    collector_metrics = {r.metric for r in gpu_readings("host/h/gpu0", full)[0]}
    by_entity: dict[str, set[str]] = defaultdict(set)
    for key in twin.series_keys:
        by_entity[key.entity].add(key.metric)
    for s, server in enumerate(twin.topology.server_paths):
        cards = [f"{server}/gpu{k}" for k in range(int(hw.server_gpus[s]))]
        assert all(by_entity[c] == collector_metrics for c in cards)
        assert f"{server}/gpu{len(cards)}" not in by_entity
        assert set(HOST_MEMORY_METRICS) <= by_entity[server]
        assert by_entity[f"{server}/{disk_segment('/')}"] == set(DISK_METRICS)
        assert by_entity[f"{server}/net-eth0"] == set(NIC_METRICS)
    assert set(GPU_METRICS) == collector_metrics
    assert all(key.metric in METRICS for key in twin.series_keys)
    assert hw.server_gpus.min() >= 4 and hw.server_gpus.max() <= 8
    assert {p.split("/")[0] for p in hw.card_paths} == {"c01", "c02"}


def test_inventory_describes_each_gpu_server_and_card() -> None:
    twin = Twin("gpu-fleet", seed=4)
    items = {item["entity"]: item for item in twin.inventory()}
    assert {key.entity for key in twin.series_keys} <= set(items)
    collector_keys = {
        "index",
        "name",
        "uuid",
        "memory_total_bytes",
        "power_limit_default_watts",
        "driver_version",
        "cuda_version",
        "backend",
    }
    models = set()
    for server in twin.topology.server_paths:
        item = items[server]
        n = item["gpu_count"]
        cards = [items[f"{server}/gpu{k}"] for k in range(n)]
        assert [c["index"] for c in cards] == list(range(n))
        assert all(c["kind"] == "gpu" and collector_keys <= set(c) for c in cards)
        assert {c["name"] for c in cards} == {item["gpu_model"]}
        assert {c["memory_total_bytes"] for c in cards} == {item["gpu_memory_total_bytes"]}
        assert len({c["uuid"] for c in cards}) == n
        assert item["cuda_version"] in {"11.4", "12.4"}
        assert item["memory_total_bytes"] >= 128 * 2**30 and item["disk_total_bytes"] > 3e12
        assert items[f"{server}/disk-root"]["total_bytes"] == item["disk_total_bytes"]
        models.add(item["gpu_model"])
    assert len(models) >= 3  # a mix of models
    titan = next(i for i in items.values() if i.get("name") == "TITAN Xp")
    assert titan["memory_total_bytes"] == 12196 * 2**20  # seed 004's cards
    assert titan["power_limit_default_watts"] == 250.0


def test_plain_scenarios_have_no_gpu_series_or_job_events() -> None:
    for name, n_series in [("small", 72), ("very-large", 269), ("network-loss", 269)]:
        twin = Twin.from_scenario(name, seed=2)
        assert twin.topology.gpus is None
        assert len(twin.series_keys) == n_series
        assert {k.metric for k in twin.series_keys} <= set(NOISE)
        frame = twin.run(2 * HOUR)
        assert not any(str(e.kind).startswith("job.") for e in frame.events)
        assert not any(i["kind"] in ("gpu", "disk", "nic") for i in twin.inventory())


# --- determinism ------------------------------------------------------------------------------


def _concat(twin: Twin, blocks: list[int]) -> tuple[np.ndarray, list[Any]]:
    frames = [twin.run(n) for n in blocks]
    return np.concatenate([f.values for f in frames]), [e for f in frames for e in f.events]


def test_same_seed_same_data_however_the_steps_are_grouped() -> None:
    whole, whole_events = _concat(Twin.from_scenario("gpu-fleet", seed=5), [3 * HOUR])
    cut, cut_events = _concat(
        Twin.from_scenario("gpu-fleet", seed=5), [1] * 30 + [7, 700, 13, 1, 1409]
    )
    assert np.array_equal(whole, cut)
    assert whole_events == cut_events and len(whole_events) > 5
    other, _ = _concat(Twin.from_scenario("gpu-fleet", seed=6), [3 * HOUR])
    assert not np.array_equal(whole, other)


def test_grouping_does_not_change_a_busy_afternoon() -> None:
    start = 1_767_225_600_000 + 13 * 3_600_000  # 13:00 UTC, when jobs arrive fastest
    twin_a = Twin("gpu-fleet-large", seed=3, start_ms=start)
    twin_b = Twin("gpu-fleet-large", seed=3, start_ms=start)
    a, events_a = _concat(twin_a, [HOUR + 5])
    b, events_b = _concat(twin_b, [1] * 5 + [HOUR - 1, 1])
    assert np.array_equal(a, b) and events_a == events_b
    assert sum(e.kind == EventKind.JOB_STARTED for e in events_a) >= 20


# --- the jobs ---------------------------------------------------------------------------------


def test_jobs_never_oversubscribe_a_card_or_a_server(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    hw = twin.topology.gpus
    assert hw is not None
    jobs = _jobs(twin, frame)
    slots = np.zeros((DAY, hw.n_cards), dtype=np.int64)
    memory = np.zeros((DAY, hw.n_cards), dtype=np.int64)
    for job in jobs:
        n_cards = int(hw.server_gpus[job["server"]])
        assert len(job["cards"]) in (1, 2, 4, 8) and len(job["cards"]) <= n_cards
        assert len(set(job["cards"])) == len(job["cards"]) and max(job["cards"]) < n_cards
        cards = int(hw.card_start[job["server"]]) + np.array(job["cards"])
        rows = slice(job["start"], min(job["end"], DAY))
        slots[rows, cards] += 1 if len(cards) == 1 else SLOTS_PER_CARD
        memory[rows, cards] += job["memory"]
    assert slots.max() <= SLOTS_PER_CARD  # two single-card jobs share, bigger jobs do not
    assert (memory <= hw.card_memory_bytes).all()
    assert (slots == SLOTS_PER_CARD).any()  # the fleet fills cards
    # what the cards report is exactly what the running jobs hold
    assert np.array_equal(_block(twin, frame, "gpu_memory_used_bytes"), memory)
    total = _block(twin, frame, "gpu_memory_used_bytes") + _block(
        twin, frame, "gpu_memory_free_bytes"
    )
    assert (total == hw.card_memory_bytes).all()


def test_cards_are_released_when_their_jobs_end(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    hw = twin.topology.gpus
    assert hw is not None
    ended = {e.attributes["job"]: e for e in frame.events if e.kind == EventKind.JOB_ENDED}
    jobs = _jobs(twin, frame)
    assert len(ended) > 50
    util = _block(twin, frame, "gpu_utilization_ratio")
    busy = np.zeros(util.shape, dtype=bool)
    for job in jobs:
        cards = int(hw.card_start[job["server"]]) + np.array(job["cards"])
        busy[job["start"] : min(job["end"], DAY), cards] = True
        end = ended.get(job["attributes"]["job"])
        if end is not None:
            assert (end.ts - twin.start_ms) // twin.step_ms == job["end"]
            assert end.entity == twin.topology.server_paths[job["server"]]
            assert end.attributes["gpus"] == job["cards"]
    assert (util[~busy] == 0.0).all()  # an idle card reads exactly 0 %
    assert (util[busy] > 0.0).all()
    assert not busy[-1].all() and busy[-1].any()


def test_job_events_carry_who_asked_for_what(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    starts = [e for e in frame.events if e.kind == EventKind.JOB_STARTED]
    assert 60 <= len(starts) <= 400  # a few hundred events a day
    for e in starts:
        a = e.attributes
        assert a["user"] in USERS
        assert a["gpu_memory_bytes"] > 0 and a["cores"] >= 2 and a["memory_bytes"] > 0
        assert 0.5 * 3600 <= a["expected_duration_s"] <= 12 * 3600
        assert e.end_ts == e.ts + a["expected_duration_s"] * 1000
        assert e.entity in twin.topology.server_index
    assert len({e.attributes["user"] for e in starts}) >= 8
    assert {len(e.attributes["gpus"]) for e in starts} == {1, 2, 4, 8}


def test_the_fleet_is_busy_in_working_hours_but_never_full(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    hw = twin.topology.gpus
    assert hw is not None
    busy = _block(twin, frame, "gpu_utilization_ratio") > 0
    night, afternoon = busy[2 * HOUR : 5 * HOUR].mean(), busy[12 * HOUR : 18 * HOUR].mean()
    assert night < 0.35 and 0.5 < afternoon < 0.9
    per_server = np.add.reduceat(busy[15 * HOUR], hw.card_start) / hw.server_gpus
    assert (per_server == 0).any() and (per_server == 1).any()  # some idle, some full


# --- the physics ------------------------------------------------------------------------------


def test_gpu_power_shows_in_the_servers_pdus_and_room() -> None:
    rows = slice(14 * HOUR, 15 * HOUR)
    busy_twin = Twin("gpu-fleet", seed=1)
    idle_twin = Twin("gpu-fleet", seed=1, jobs=JobParams(rate_per_card_hour=0.0))
    busy, idle = busy_twin.run(15 * HOUR).values[rows], idle_twin.run(15 * HOUR).values[rows]
    blocks = busy_twin.layout.blocks

    def mean(values: np.ndarray, metric: str) -> np.ndarray:
        return np.asarray(values[:, blocks[metric]].mean(axis=0))

    gpu_w = mean(busy, "gpu_power_watts") - mean(idle, "gpu_power_watts")
    hw = busy_twin.topology.gpus
    assert hw is not None
    server_gpu_w = np.add.reduceat(gpu_w, hw.card_start)
    server_w = mean(busy, "power_watts") - mean(idle, "power_watts")
    assert server_gpu_w.sum() > 5000.0  # an afternoon of jobs
    # a server draws its cards' power, plus its CPU's for the jobs' cores
    assert (server_w >= server_gpu_w - 5.0).all()
    assert (server_w <= server_gpu_w + busy_twin.topology.peak_w).all()
    topo = busy_twin.topology
    pdu_w = mean(busy, "pdu_power_watts") - mean(idle, "pdu_power_watts")
    assert np.allclose(pdu_w, np.add.reduceat(server_w, topo.rack_start), rtol=0.01, atol=10.0)
    it_w = mean(busy, "it_power_watts") - mean(idle, "it_power_watts")
    assert it_w[0] == pytest.approx(server_w.sum(), rel=0.01)
    assert mean(busy, "crac_power_watts")[0] > mean(idle, "crac_power_watts")[0] + 0.15 * it_w[0]
    # and their heat leaves through the exhaust
    chassis = mean(busy, "chassis_temperature_celsius") - mean(idle, "chassis_temperature_celsius")
    assert chassis[server_gpu_w > 1000.0].min() > 3.0


def test_cpus_work_for_the_jobs(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    cpu = _block(twin, frame, "cpu_utilization_ratio")
    assert cpu[2 * HOUR : 5 * HOUR].mean() < 0.15
    assert cpu[12 * HOUR : 18 * HOUR].mean() > 2 * cpu[2 * HOUR : 5 * HOUR].mean()


def test_card_temperatures_stay_in_realistic_ranges(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    util = _block(twin, frame, "gpu_utilization_ratio")
    temp = _block(twin, frame, "gpu_temperature_celsius")
    power = _block(twin, frame, "gpu_power_watts")
    limit = _block(twin, frame, "gpu_power_limit_watts")
    window = 10 * 12  # ten minutes of steps: the card has settled
    steady = np.lib.stride_tricks.sliding_window_view(util, window, axis=0)
    idle = np.zeros(util.shape, dtype=bool)
    loaded = np.zeros(util.shape, dtype=bool)
    idle[window - 1 :] = (steady == 0).all(axis=-1)
    loaded[window - 1 :] = (steady > 0.85).all(axis=-1)
    assert idle.sum() > 1000 and loaded.sum() > 1000
    assert temp[idle].min() >= 28.0 and temp[idle].max() <= 45.0  # idle: 30-45 °C
    assert 30.0 <= np.median(temp[idle]) <= 40.0
    assert temp[loaded].min() >= 62.0 and temp[loaded].max() <= 85.0  # loaded: 65-85 °C
    assert temp.max() < 90.0  # under the cards' slowdown temperature
    assert (power <= limit).all()  # held to its power limit
    assert np.median(power[loaded] / limit[loaded]) > 0.8


# --- the hosts --------------------------------------------------------------------------------


def test_host_memory_disk_and_network_add_up(day: tuple[Twin, TwinFrame]) -> None:
    twin, frame = day
    hw = twin.topology.gpus
    assert hw is not None
    used, available = (
        _block(twin, frame, "memory_used_bytes"),
        _block(twin, frame, "memory_available_bytes"),
    )
    assert (used + available == hw.server_memory_bytes).all()
    ratio = _block(twin, frame, "memory_utilization_ratio")
    assert np.allclose(ratio, used / hw.server_memory_bytes, atol=0.0006)
    assert ratio.max() < 0.95 and ratio[15 * HOUR].max() > 0.2  # jobs take memory
    disk = _block(twin, frame, "disk_used_bytes")
    assert (disk + _block(twin, frame, "disk_free_bytes") == hw.server_disk_bytes).all()
    step = np.diff(disk, axis=0)
    assert (step > 0).any() and (step < 0).any()  # written by jobs, cleaned after them
    for d in ("receive", "transmit"):
        rate = _block(twin, frame, f"network_{d}_bytes_per_second")
        total = _block(twin, frame, f"network_{d}_bytes_total")
        assert np.array_equal(np.diff(total, axis=0), rate[1:] * twin.step_s)  # a true counter
        assert (rate >= 0).all()
    rx = _block(twin, frame, "network_receive_bytes_per_second")
    assert np.median(rx[15 * HOUR]) > 10 * np.median(rx[3 * HOUR])  # jobs read their data


def test_a_gpu_server_can_be_faulted_like_any_other() -> None:
    twin = Twin("gpu-fleet", seed=2)
    event = twin.inject("fan_off", "c01/r01/s01/fan1", start_ms=twin.start_ms + 60_000)
    frame = twin.run(HOUR)
    assert event in frame.events
    hw = draw_gpu_hardware(twin.topology.server_paths, seed=2)
    assert np.array_equal(hw.card_memory_bytes, twin.topology.gpus.card_memory_bytes)  # type: ignore[union-attr]
