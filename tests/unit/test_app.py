"""The wiring: `simulate` (bulk) and `run_live` (bus, writer, live state, commands)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest

from rackwatch import app
from rackwatch.bus import subjects
from rackwatch.model import Command, EventKind, SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.sources.readings import Reading, to_batch
from rackwatch.store.base import Query

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_simulate_writes_every_sample_and_the_fault_labels(tmp_path: Path) -> None:
    settings = load_settings(twin={"scenario": "fan-fail", "seed": 3})
    progress: list[tuple[int, int]] = []
    summary = app.simulate(
        settings,
        duration_s=3600,
        out=tmp_path,
        start_ms=START_MS,
        block_steps=100,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert summary.n_servers == 5
    assert summary.n_samples == summary.n_series * 720  # no telemetry loss in this scenario
    assert summary.n_faults == 1
    assert progress[-1] == (720, 720) and len(progress) == 8
    with contextlib.closing(app.open_store(settings, SeriesRegistry(), tmp_path)) as store:
        result = store.query(Query(START_MS, summary.end_ms, entity="**"))
        assert len(result) == summary.n_samples
        faults = store.events(START_MS, summary.end_ms, kinds=[EventKind.FAULT_INJECTED])
        assert [(e.entity, e.attributes["fault"]) for e in faults] == [
            ("c01/r01/s03/fan1", "fan_off")
        ]
        assert {r.kind for r in store.inventory()} >= {"server", "fan", "pdu", "crac", "room"}


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    settings = load_settings(twin={"scenario": "small", "seed": 11})
    values = []
    for name in ("a", "b"):
        summary = app.simulate(settings, duration_s=600, out=tmp_path / name, start_ms=START_MS)
        with contextlib.closing(app.open_store(settings, SeriesRegistry(), tmp_path / name)) as s:
            values.append(s.query(Query(START_MS, summary.end_ms))["value"])
    np.testing.assert_array_equal(values[0], values[1])


def test_run_live_stores_everything_published_and_obeys_commands(tmp_path: Path) -> None:
    # Without this machine's collector, whose samples the writer would count too.
    settings = load_settings(
        data_dir=tmp_path, twin={"scenario": "small", "speed": 3000.0}, host={"enabled": False}
    )
    services = app.build_services(settings, start_ms=START_MS)
    fan = "c01/r01/s01/fan1"

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        while services.poller.steps_done < 50:
            await asyncio.sleep(0.01)
        await services.bus.publish(
            subjects.commands("control"),
            Command(fan, "fan.set_level", {"level": 3}, issued_by="test"),
        )
        await services.bus.publish(
            subjects.commands("control"),
            Command(fan, "fan.set_level", {"level": 9}, issued_by="test"),
        )
        applied_at = services.poller.steps_done
        while services.poller.steps_done < applied_at + 20:
            await asyncio.sleep(0.01)
        stop.set()
        await runner

    try:
        asyncio.run(scenario())
        assert services.intelligence is not None  # its health samples are stored too
        derived = services.intelligence.n_health_samples
        assert services.writer.n_samples == services.poller.n_samples + derived > derived > 0
        assert services.twin.fan_levels()[fan] == 3
        end = START_MS + services.poller.steps_done * 5000
        events = services.store.events(START_MS, end + 1)
        kinds = {e.kind for e in events}
        assert {EventKind.COMMAND_APPLIED, EventKind.COMMAND_REJECTED} <= kinds
        level = services.store.query(Query(START_MS, end, entity=fan, metrics="fan_level"))
        assert level["value"][-1] == 3  # the command reached the twin and changed it
        modes = [e for e in events if e.kind == EventKind.CONTROL_MODE_CHANGED]
        assert [(e.entity, e.attributes["mode"]) for e in modes] == [(fan, "manual")]
        assert services.live.n_samples == services.writer.n_samples
    finally:
        services.close()


def test_bad_scenario_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", twin={"scenario": "nope"})
    with pytest.raises(ValueError, match="unknown twin scenario"):
        app.simulate(settings, duration_s=60, out=tmp_path / "d", start_ms=START_MS)
    assert not (tmp_path / "d").exists()


def test_run_live_without_the_twin_stores_what_real_sources_publish(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, twin={"enabled": False}, host={"enabled": False})
    services = app.build_services(settings)
    assert services.twin is None and services.poller is None and services.controller is None
    batch = to_batch([Reading("host/box", "load1", 0.5)], services.registry, START_MS)

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        while not services.writer.ready.is_set():
            await asyncio.sleep(0.01)
        await services.bus.publish(subjects.telemetry("agent"), batch)
        while services.live.n_samples < 1:
            await asyncio.sleep(0.01)
        stop.set()
        await runner

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
        assert services.writer.n_samples == 1
        stored = services.store.query(Query(START_MS, START_MS + 1, entity="host/**"))
        assert stored["value"].tolist() == [0.5]
        assert services.store.inventory() == []  # no simulated room
        assert services.intelligence is not None  # it runs on real machines' telemetry too
        assert services.intelligence.snapshot.stats.n_samples == 1
    finally:
        services.close()


def test_the_intelligence_can_be_turned_off(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, twin={"enabled": False}, intelligence={"enabled": False}
    )
    services = app.build_services(settings)
    try:
        assert services.intelligence is None
        assert services.alerts.derived_sources == {"intelligence"}
    finally:
        services.close()


def test_real_machines_go_offline_after_their_own_timeout_whatever_the_twins_speed(
    tmp_path: Path,
) -> None:
    """The twin at 20x is silent after 5 wall seconds; this host, agents and scrapes, which
    report every few seconds of the wall clock, after `[host] offline_after_seconds`."""
    settings = load_settings(
        data_dir=tmp_path, twin={"speed": 20}, host={"offline_after_seconds": 45}
    )
    engine = app.build_alert_engine(settings, app.MemoryBus(), SeriesRegistry())
    assert engine.watch is not None
    timeouts = {s: engine.watch.policy_of(s).timeout_s for s in ("twin", "host", "agent", "scrape")}
    assert timeouts == {"twin": 5.0, "host": 45.0, "agent": 45.0, "scrape": 45.0}
    assert {engine.watch.policy_of(s).speed for s in app.REAL_SOURCES} == {1.0}
