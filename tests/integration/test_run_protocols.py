"""Seed 000's protocols end to end through `rackwatch run`'s pipeline: the services that
`build_services` wires (twin poller, bus, store writer, alert engine, fan controller) running
on one event loop as `run_live` runs them, on a simulated clock (one twin step per tick)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rackwatch import app
from rackwatch.bus import subjects
from rackwatch.engine.states import DeviceState
from rackwatch.model import Command, Event, EventKind
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, midnight: a quiet hour of the daily cycle
STEP_S = 5.0


class SteppedClock:
    """The poller's clock and sleep: each sleep is one 5 s twin step, after the others ran."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, _seconds: float) -> None:
        for _ in range(3):  # let the writer, the alerts and the controller take the batch
            await asyncio.sleep(0)
        self.now += STEP_S


def run_pipeline(
    tmp_path: Path,
    scenario: str,
    minutes: float,
    during: Callable[[app.Services, int], Command | None] | None = None,
) -> app.Services:
    """Run `scenario` for `minutes` of simulated time; `during(services, step)` may return a
    Command to publish for the fan controller at that step."""
    settings = load_settings(data_dir=tmp_path, twin={"scenario": scenario, "seed": 4})
    services = app.build_services(settings, start_ms=START_MS)
    clock = SteppedClock()
    services.poller.clock, services.poller.sleep = clock, clock.sleep
    steps = int(minutes * 60 / STEP_S)

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        done = 0
        while services.poller.steps_done < steps:
            await asyncio.sleep(0)
            if during is not None and services.poller.steps_done > done:
                done = services.poller.steps_done
                command = during(services, done)
                if command is not None:
                    await services.bus.publish(subjects.commands("control"), command)
        stop.set()
        await runner

    asyncio.run(main())
    return services


def series(services: app.Services, entity: str, metric: str) -> np.ndarray:
    end = START_MS + services.poller.steps_done * 5000
    rows = services.store.query(Query(START_MS, end, entity=entity, metrics=metric, tier="raw"))
    return rows["value"]


def events(services: app.Services, kind: str, entity: str = "**") -> list[Event]:
    end = START_MS + services.poller.steps_done * 5000 + 1
    return services.store.events(START_MS, end, entity=entity, kinds=[kind])


def test_fan_fails_cpu_rises_alert_fires_other_fan_goes_high_state_shows(tmp_path: Path) -> None:
    services = run_pipeline(tmp_path, "fan-fail", minutes=45)  # fan1 of s03 stops at 30 min
    try:
        fault_step = 30 * 12
        # The stopped fan is seen within a minute and its neighbour covers for it: the CPU,
        # which would heat by several °C on one low fan (tests/unit/twin), stays under target.
        cpu = series(services, "c01/r01/s03", "cpu_temperature_celsius")
        assert cpu[fault_step:].max() < services.settings.control.target_celsius
        fired = events(services, EventKind.ALERT_FIRED, "c01/r01/s03/fan1")
        assert fired and fired[0].ts >= START_MS + fault_step * 5000
        other_fan = series(services, "c01/r01/s03/fan2", "fan_level")
        went_high = int(np.argmax(other_fan == 3))
        assert other_fan[fault_step - 1] < 3 and fault_step < went_high <= fault_step + 12
        assert (other_fan[went_high:] == 3).all()
        assert events(services, EventKind.CONTROL_FAN_FAILOVER, "c01/r01/s03/fan1")
        states = services.alerts.states()
        assert states["c01/r01/s03/fan1"] is DeviceState.FAILED
        assert states["c01/r01/s01/fan1"] is DeviceState.OK
        assert any(a.entity == "c01/r01/s03/fan1" for a in services.alerts.active_alerts())
    finally:
        services.close()


def test_a_stopped_fan_is_an_anomaly_and_its_health_falls(tmp_path: Path) -> None:
    services = run_pipeline(tmp_path, "fan-fail", minutes=40)  # fan1 of s03 stops at 30 min
    try:
        fault_ms = START_MS + 30 * 60_000
        started = events(services, EventKind.ANOMALY_STARTED, "c01/r01/s03/**")
        assert started, "no anomaly on the server whose fan stopped"
        first = min(started, key=lambda e: e.ts)
        assert first.entity == "c01/r01/s03/fan1" and first.attributes["metric"] == "fan_rpm"
        assert fault_ms <= first.ts <= fault_ms + 3 * 60_000
        assert set(first.attributes) == {"metric", "score", "detector", "z", "start", "peak"}
        before = [e for e in events(services, EventKind.ANOMALY_STARTED) if e.ts < fault_ms]
        assert len(before) <= 2  # a quiet room: load and fan level moves are explained
        predicted = events(services, EventKind.PREDICTION_FAN_FAILURE)
        assert [(e.entity, e.attributes["eta_s"]) for e in predicted] == [("c01/r01/s03/fan1", 0.0)]
        health = series(services, "c01/r01/s03", "health_score")
        assert len(health) >= 35  # a sample a minute, in the store
        assert health[:25].min() == 100.0 and health[-1] <= 50.0  # high: one of two fans is gone
        assert series(services, "c01/r01/s03/fan1", "health_score")[-1] <= 25.0  # critical
        assert series(services, "c01/r01/s01", "health_score")[-1] == 100.0
    finally:
        services.close()


@pytest.mark.slow
def test_a_wearing_fan_is_predicted_to_fail_long_before_it_stops(tmp_path: Path) -> None:
    services = run_pipeline(tmp_path, "burst-fan-degradation", minutes=100)
    try:
        fan = "c01/r02/s05/fan2"  # -2 % every 30 min from 30 min: stops at 15.5 h
        stops_ms = START_MS + int(15.5 * 3_600_000)
        predicted = events(services, EventKind.PREDICTION_FAN_FAILURE)
        assert predicted and {e.entity for e in predicted} == {fan}
        first, last = predicted[0], predicted[-1]
        assert first.ts <= START_MS + 90 * 60_000  # within an hour of the wear's start
        assert first.attributes["eta_s"] > 10 * 3600  # so, more than 10 h ahead
        low, high = last.attributes["failure_low_ms"], last.attributes["failure_high_ms"]
        assert low <= stops_ms <= (high if high is not None else 2**62)
        assert services.intelligence is not None
        current = services.intelligence.snapshot.predictions[fan]
        assert current.eta_s > 0 and current.low_s is not None
        health = series(services, fan, "health_score")
        assert health[-1] < 75.0 < health[:60].min()  # medium: predicted to fail within a day
    finally:
        services.close()


def test_burst_raises_fan_levels_then_they_come_back_down(tmp_path: Path) -> None:
    def burst(services: app.Services, step: int) -> None:
        if step == 12 * 20:  # at 20 min, 90 % CPU for 10 min on every server of the room
            services.twin.inject("load_burst", "c01", {"n_servers": 5, "duration_s": 600.0})

    services = run_pipeline(tmp_path, "small", minutes=75, during=burst)
    try:
        levels = np.stack(
            [
                series(services, f"c01/r01/s0{i}/{f}", "fan_level")
                for i in range(1, 6)
                for f in ("fan1", "fan2")
            ]
        )
        before, during, after = levels[:, 230].mean(), levels[:, 350].mean(), levels[:, -1].mean()
        assert during > before, (before, during)
        assert after < during, (during, after)
    finally:
        services.close()


def test_telemetry_loss_makes_the_server_unknown_and_its_fans_go_high(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def lose(services: app.Services, step: int) -> None:
        if step == 12 * 10:  # at 10 min every series of s02 goes silent for 3 min
            services.twin.inject(
                "telemetry_loss",
                "c01/r01/s02",
                {
                    "fraction": 1.0,
                    "min_gap_s": 180.0,
                    "max_gap_s": 180.0,
                    "duration_s": 240.0,
                    "mean_interval_s": 0.0,
                },
            )
        if step == 12 * 12 + 6:  # 2.5 min into the silence
            seen["state"] = services.alerts.states().get("c01/r01/s02")

    services = run_pipeline(tmp_path, "small", minutes=15, during=lose)
    try:
        assert seen["state"] is DeviceState.UNKNOWN
        assert events(services, EventKind.CONTROL_FAILSAFE, "c01/r01/s02")
        fan = series(services, "c01/r01/s02/fan1", "fan_level")
        assert fan[-1] == 3  # back in view: its fans were sent high while it was lost
    finally:
        services.close()


def test_manual_mode_is_respected_by_the_controller(tmp_path: Path) -> None:
    def manual(_services: app.Services, step: int) -> Command | None:
        if step == 12:
            return Command("c01/r01/s01/fan1", "fan.set_level", {"level": "off"}, issued_by="ops")
        return None

    services = run_pipeline(tmp_path, "small", minutes=20, during=manual)
    try:
        fan1 = series(services, "c01/r01/s01/fan1", "fan_level")
        fan2 = series(services, "c01/r01/s01/fan2", "fan_level")
        assert (fan1[20:] == 0).all()  # left off for 19 minutes, although auto would not
        assert fan2[-1] >= 1
        applied = events(services, EventKind.COMMAND_APPLIED, "c01/r01/s01/fan1")
        assert [e.attributes["issued_by"] for e in applied] == ["ops"]
    finally:
        services.close()


@pytest.mark.parametrize("token", [None, "rw_not-a-token"])
def test_control_without_a_valid_token_is_refused(tmp_path: Path, token: str | None) -> None:
    import httpx

    settings = load_settings(data_dir=tmp_path, twin={"scenario": "small"})
    services = app.build_services(settings, start_ms=START_MS)
    try:
        transport = httpx.ASGITransport(app=services.api)
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.post(
                    "/api/v1/fans/level",
                    headers=headers,
                    json={"entity": "c01/r01/s01/fan1", "level": "high"},
                )

        response = asyncio.run(call())
        assert response.status_code == 401
        assert all(s.mode == "auto" for s in services.controller.status())
    finally:
        services.close()
