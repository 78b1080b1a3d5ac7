"""Helpers for the control API tests (imported by name, like api_support.py): tokens, a room
(the filled store's twin with a real alert engine and fan controller, served by uvicorn) and
a bus that records what is published."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from api_support import START_MS, Filled, LiveApp
from fastapi import FastAPI

from rackwatch.api import ApiContext, create_app
from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.control import FanController, FanLayout
from rackwatch.engine.energy import EnergyConfig, LiveEnergy, Tariff
from rackwatch.engine.intelligence import Intelligence
from rackwatch.engine.reports import ReportArchive, Reporter
from rackwatch.model import Command, Event
from rackwatch.settings import AlertSettings, build_alert_rules
from rackwatch.sources.poller import PacedPoller
from rackwatch.sources.twin import TwinSource
from rackwatch.tokens import TokenStore
from rackwatch.twin import Twin

Serve = Callable[[FastAPI], LiveApp]
FAILED_FAN = "c01/r01/s03/fan1"  # the fan-fail scenario stops it at 30 min
S01 = "c01/r01/s01"
FAULT_STEPS = 400  # 33 min 20 s: the fan stopped, fan-stopped fired (10 s) and the fan FAILED

UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Tokens:
    store: TokenStore
    read: str
    control: str
    revoked: str
    control_id: str

    @property
    def control_by(self) -> str:
        """How records name the control token ("ops"): its name and public id."""
        return f"ops (token {self.control_id})"

    def header(self, which: str | None) -> dict[str, str]:
        """Authorization for "read", "control", "revoked", "bad", or none (None)."""
        secrets = {"read": self.read, "control": self.control, "revoked": self.revoked}
        if which is None:
            return {}
        return {"Authorization": f"Bearer {secrets.get(which, 'rw_not-a-token')}"}


def make_tokens(path: Path) -> Tokens:
    store = TokenStore(path / "tokens.json")
    read, _ = store.create("read", name="dashboard")
    control, info = store.create("control", name="ops")
    revoked, gone = store.create("control", name="old")
    store.revoke(gone.id)
    return Tokens(store, read, control, revoked, info.id)


class RecordingBus(MemoryBus):
    """A MemoryBus that keeps every (subject, message) published."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, Any]] = []

    async def publish(self, subject: str, message: Any) -> None:
        self.log.append((subject, message))
        await super().publish(subject, message)

    def commands(self) -> list[tuple[str, Command]]:
        return [(s, m) for s, m in self.log if isinstance(m, Command)]

    def events(self, kind: str | None = None) -> list[Event]:
        return [m for _s, m in self.log if isinstance(m, Event) and kind in (None, m.kind)]


@dataclass
class Room:
    """A served app over the filled store, with the fan-fail twin's first 33 minutes already
    seen by a real alert engine and fan controller (no notifiers)."""

    server: LiveApp
    ctx: ApiContext
    bus: RecordingBus
    twin: Twin
    source: TwinSource
    alerts: AlertEngine
    controller: FanController
    tokens: Tokens
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.server.url + path.lstrip("/")

    def request(
        self, method: str, path: str, token: str | None = "control", **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.tokens.header(token), **kwargs.pop("headers", {})}
        return httpx.request(method, self.url(path), headers=headers, timeout=10, **kwargs)

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a control call could change."""
        return (
            len(self.bus.log),
            self.controller.status(),
            [a.as_dict() for a in self.alerts.active_alerts()],
            {e: self.alerts.state_details(e) for e in self.alerts.states()},
            self.twin.fault_events(),
        )

    def start(self, coroutine_fn: Callable[[], Any]) -> None:
        """Run a coroutine as a task on the server's loop until the test ends."""

        async def start() -> None:
            self.tasks.append(asyncio.create_task(coroutine_fn()))
            await asyncio.sleep(0)

        self.server.call(start)

    def run_pipeline(self, speed: float = 200.0) -> asyncio.Event:
        """The twin paced on the bus (as `rackwatch run` does), obeying its commands, with the
        alert engine consuming telemetry; returns the event that stops the twin."""
        stop = asyncio.Event()
        poller = PacedPoller(self.source, self.bus, step_s=self.twin.step_s, speed=speed)
        self.start(poller.obey)
        self.start(self.alerts.run)
        wait_for(lambda: self.alerts.ready.is_set())
        self.start(lambda: poller.run(stop))
        return stop

    def stop_tasks(self) -> None:
        async def stop() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.server.call(stop)


def build_room(
    filled: Filled, tokens: Tokens, serve: Serve, *, feed_steps: int = FAULT_STEPS, **ctx: Any
) -> Room:
    bus = RecordingBus()
    twin = Twin.from_scenario("fan-fail", seed=1, start_ms=START_MS)
    source = TwinSource(twin, filled.registry)
    alerts = AlertEngine(bus, filled.registry, build_alert_rules(AlertSettings()))
    controller = FanController(bus, FanLayout.from_inventory(twin.inventory()), filled.registry)
    intelligence = Intelligence(bus, filled.registry, alerts=alerts)
    if feed_steps:
        batch, _events = source.read(feed_steps)
        alerts.process(batch)
        controller.view.update(batch)
        intelligence.process(batch, "twin")
    context = ApiContext(
        store=filled.store,
        registry=filled.registry,
        live=filled.live,
        bus=bus,
        alerts=ctx.pop("alerts", alerts),
        controller=ctx.pop("controller", controller),
        intelligence=ctx.pop("intelligence", intelligence),
        energy=ctx.pop("energy", EnergyConfig(live=LiveEnergy(filled.registry, Tariff(0.2)))),
        reports=ctx.pop(
            "reports", Reporter(filled.store, ReportArchive(filled.store.path / "reports"), UTC)
        ),
        tokens=ctx.pop("token_store", tokens.store),
        **ctx,
    )
    server = serve(create_app(context))
    room = Room(server, context, bus, twin, source, alerts, controller, tokens)
    if feed_steps:
        server.call(controller.decide)
    bus.log.clear()
    return room


@contextlib.contextmanager
def serving_rooms() -> Iterator[Serve]:
    """A `serve` for module-scoped fixtures: the apps it starts stop at the end."""
    started: list[LiveApp] = []

    def serve(app: FastAPI) -> LiveApp:
        started.append(LiveApp(app))
        return started[-1]

    try:
        yield serve
    finally:
        for app in started:
            app.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.01)
