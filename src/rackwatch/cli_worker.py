"""`rackwatch worker`: one role of rackwatch, for one partition, on a NATS bus (docs/SCALE.md).

The command's body lives here so that cli.py only registers it; `rackwatch.worker` does the
work. SIGINT and SIGTERM stop it: what it has read is finished, then it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from rackwatch.cli_options import ConfigOption, DataDirOption

if TYPE_CHECKING:
    from rackwatch.worker import WorkerStatus

console = Console()
err = Console(stderr=True)

ROLES = ("twin", "store", "alerts", "control", "detect")


def worker(
    role: Annotated[
        str,
        typer.Option(
            help="What this process does: twin (publish the simulated room), store, alerts, "
            "control (the fans) or detect (anomalies, predictions, health).",
            metavar="ROLE",
        ),
    ],
    bus: Annotated[
        str | None,
        typer.Option(
            help="The NATS server with JetStream, e.g. nats://127.0.0.1:4222 \\[default: "
            "\\[bus] url].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    partition: Annotated[
        str,
        typer.Option(
            help="This worker's share, K/N: the racks whose hash modulo N is K. Every process "
            "of the site uses the same N (the twin role publishes in N partitions).",
            metavar="K/N",
        ),
    ] = "0/1",
    store: Annotated[
        str | None,
        typer.Option(
            help="The store role's store: duckdb (in --data-dir, one store worker) or "
            "postgresql://user@host:port/db \\[default: \\[store] url].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="The twin's scenario (twin and control roles).", show_default=False, metavar="NAME"
        ),
    ] = None,
    clusters: Annotated[
        int | None,
        typer.Option(help="The twin's clusters.", min=1, max=10_000, metavar="N"),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per wall second (twin role).", min=0.01, max=1000, metavar="X"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The twin's seed.", metavar="N")] = None,
    stats: Annotated[
        Path | None,
        typer.Option(
            help="Write the counters and the lag (p50, p99 over the last 2 s) to this JSON "
            "file every 2 s.",
            metavar="FILE",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Run one role of rackwatch for one partition on a NATS bus: twin, store, alerts, control
    or detect. Durable consumers: a worker that stops resumes where it stopped. Ctrl-C stops."""
    from rackwatch.bus.spaced import Partition
    from rackwatch.errors import RackwatchError
    from rackwatch.settings import load_settings
    from rackwatch.worker import Role, run_worker

    if role not in ROLES:
        raise typer.BadParameter(f"choose one of: {', '.join(ROLES)}", param_hint="--role")
    try:
        share = Partition.parse(partition)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--partition") from None
    overrides: dict[str, object] = {
        "bus": {"url": bus, "partitions": share.count},
        "store": {"url": store},
        "twin": {"scenario": scenario, "clusters": clusters, "speed": speed, "seed": seed},
    }
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(config, **overrides)  # ConfigError: one line, exit 2 (cli.main)
    stop = asyncio.Event()

    def ready(status: WorkerStatus) -> None:
        console.print(
            f"rackwatch worker {status.role} {share.index}/{share.count} on "
            f"{settings.bus.url}: running. Ctrl-C stops."
        )

    async def main() -> WorkerStatus:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await run_worker(settings, Role(role), share, stop, on_ready=ready, stats_file=stats)

    try:
        status = asyncio.run(main())
    except RackwatchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    counts = ", ".join(f"{name} {value:,}" for name, value in status.snapshot().items())
    lags = status.lags.overall()
    if lags["lag_p50_s"] is not None:
        counts += f", lag p50 {lags['lag_p50_s']:g} s, p99 {lags['lag_p99_s']:g} s"
    console.print(f"stopped: {counts}")


def serve(
    bus: Annotated[
        str | None,
        typer.Option(
            help="The site's NATS server, e.g. nats://127.0.0.1:4222 \\[default: \\[bus] url].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="The store the workers share: postgresql://user@host:port/db "
            "\\[default: \\[store] url].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to serve on \\[default: 127.0.0.1].", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (0: a free one) \\[default: 8000].", min=0, max=65535),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the dashboard, the API and /metrics of a site run by `rackwatch worker`: history
    from the shared store, live telemetry from the bus. Several may run. Ctrl-C stops."""
    from rackwatch.errors import RackwatchError
    from rackwatch.frontend import build_front_end, serve_front_end
    from rackwatch.settings import load_settings

    overrides: dict[str, object] = {
        "bus": {"url": bus},
        "store": {"url": store},
        "server": {"host": host, "port": port},
    }
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(config, **overrides)
    front = build_front_end(settings)
    stop = asyncio.Event()

    def serving(url: str) -> None:
        console.print(
            f"rackwatch serve: {url} (store {settings.store.url.split('@')[-1]}, bus "
            f"{settings.bus.url}). Ctrl-C stops."
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve_front_end(front, stop, serving)

    try:
        asyncio.run(main())
    except RackwatchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        front.close()
    console.print("stopped")
