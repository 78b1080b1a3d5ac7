"""`rackwatch devices`: the twin's room as MQTT devices on a broker (docs/MQTT.md).

The command's body lives here so that cli.py only registers it. It runs the scenario's twin in
scaled real time and publishes every device (telemetry at each step, retained capabilities and
state, availability with the last will), obeys the fan-level commands the broker brings, and
publishes `offline` for every device when it stops (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rackwatch.sources.mqtt.devices import TwinDevices

console = Console()


def devices(
    mqtt: Annotated[
        str,
        typer.Option(help="The broker, e.g. mqtt://127.0.0.1:1883.", metavar="URL"),
    ],
    scenario: Annotated[
        str | None,
        typer.Option(
            help="The twin's scenario (`rackwatch scenarios`) \\[default: small].",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(help="Simulated seconds per wall second.", min=0.01, max=10_000, metavar="X"),
    ] = 1.0,
    seed: Annotated[int | None, typer.Option(help="The twin's seed.", metavar="N")] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Topic prefix \\[default: rackwatch].", show_default=False, metavar="PREFIX"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Settings file (\\[mqtt] username and password).", metavar="FILE"),
    ] = None,
) -> None:
    """Run the twin's servers as MQTT devices: telemetry out, fan commands in, offline (their
    last will) when stopped. Ctrl-C stops."""
    from rackwatch.app import build_twin
    from rackwatch.errors import ConfigError
    from rackwatch.settings import load_settings
    from rackwatch.sources.mqtt import BrokerAddress
    from rackwatch.sources.mqtt.devices import TwinDevices
    from rackwatch.sources.mqtt.topics import validate_prefix
    from rackwatch.twin import SCENARIOS

    settings = load_settings(
        config,
        twin={"scenario": scenario or "small", "seed": seed, "speed": speed},
        mqtt={"url": mqtt, "prefix": prefix},
    )
    if settings.twin.scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"unknown scenario {settings.twin.scenario!r}; choose one of: {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    try:
        address = BrokerAddress.parse(mqtt)
        topic_prefix = validate_prefix(settings.mqtt.prefix)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    m = settings.mqtt
    if m.username is not None and address.username is None:
        password = None if m.password is None else m.password.get_secret_value()
        address = BrokerAddress(address.host, address.port, m.username, password)
    now_ms = int(time.time() * 1000)
    step_ms = 5000
    twin = build_twin(settings, now_ms - now_ms % step_ms + step_ms)
    room = TwinDevices(twin, address, prefix=topic_prefix, speed=settings.twin.speed)
    console.print(
        f"rackwatch devices: {len(room.links)} devices of scenario [bold]{twin.name}[/] "
        f"({twin.topology.n_servers} servers) at {settings.twin.speed:g}x on "
        f"{address.display}, topics {topic_prefix}/<device>/…; Ctrl-C stops."
    )
    asyncio.run(_serve(room))
    console.print(
        f"stopped: {room.n_steps} steps, {room.n_messages:,} messages sent, "
        f"{room.n_commands} fan commands obeyed; every device is offline"
    )


async def _serve(room: TwinDevices) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    runner = asyncio.create_task(room.run(stop))
    try:
        await asyncio.shield(runner)
    except asyncio.CancelledError:  # Ctrl-C: a clean stop, every device offline
        stop.set()
        await runner
