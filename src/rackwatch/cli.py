"""The `rackwatch` command line (Typer + Rich). Thin: it parses, then calls `rackwatch.app`.

The package's heavy parts (the API, DuckDB, the twin) are imported inside the commands that
use them, so that `rackwatch --help` answers at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rackwatch import __version__, cli_devices, cli_mcp, cli_worker
from rackwatch.cli_energy import energy as energy_command
from rackwatch.cli_pdu import pdu_cli
from rackwatch.cli_recommend import recommend as recommend_command
from rackwatch.cli_report import report as report_command
from rackwatch.errors import RackwatchError

if TYPE_CHECKING:
    from rackwatch import app
    from rackwatch.engine.inventory import Disagreement
    from rackwatch.model import SeriesKey
    from rackwatch.readout.fetch import OpenStore, Request
    from rackwatch.settings import Settings
    from rackwatch.store.base import Store
    from rackwatch.tokens import TokenStore

cli = typer.Typer(
    name="rackwatch",
    help="Monitor, control and predict failures in a server room (and its simulated twin).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _no_type_label(
    original: Callable[[Any, Any], str | None],
) -> Callable[[Any, Any], str | None]:
    """Typer's help shows a type for every parameter, `<bool>` even for flags (`--help`) and
    `<str>` beside an argument's own name: show none there. Value options name what they take
    with `metavar` (DIR, DURATION…)."""

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or isinstance(self, typer.core.TyperArgument):
            return None
        return original(self, ctx)

    return display_type_rich


for _param in (typer.core.TyperOption, typer.core.TyperArgument):
    _param.display_type_rich = _no_type_label(_param.display_type_rich)  # type: ignore[method-assign, assignment]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML settings file (see README: Settings).",
        show_default=False,
        metavar="FILE",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the store lives \\[default: ./rackwatch-data].",
        show_default=False,
        metavar="DIR",
    ),
]
ScenarioOpt = Annotated[
    str | None,
    typer.Option(
        "--scenario",
        "-s",
        help="A preset, test protocol or GPU fleet (gpu-fleet, gpu-fleet-large): see "
        "`rackwatch scenarios` \\[default: very-large].",
        metavar="NAME",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        help="Random seed: same seed, same data \\[default: 0].", show_default=False, metavar="N"
    ),
]
MtbfOpt = Annotated[
    float | None,
    typer.Option(
        "--random-faults-mtbf",
        metavar="DAYS",
        help="Also draw random fan, disk and sensor failures (Weibull lifetimes) with this mean "
        "time between failures per entity, in days.",
        show_default=False,
        min=0.001,
    ),
]
ClustersOpt = Annotated[
    int | None,
    typer.Option(
        help="Copies of the scenario's cluster \\[default: 1].",
        show_default=False,
        min=1,
        metavar="N",
    ),
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    from rackwatch.settings import load_settings
    from rackwatch.twin import SCENARIOS

    settings = load_settings(config, **overrides)
    if settings.twin.scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"unknown scenario {settings.twin.scenario!r}; choose one of: {', '.join(SCENARIOS)}",
            param_hint="--scenario",
        )
    return settings


def _print_version(value: bool) -> None:
    if value:
        console.print(f"rackwatch {__version__}")
        raise typer.Exit


@cli.callback()
def main_callback(
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
def scenarios() -> None:
    """List the twin's scenarios: the presets, the test protocols and the GPU fleets."""
    table = Table("name", "servers/cluster", "scheduled faults", "what happens", show_lines=False)
    from rackwatch.twin import ALL_PRESETS, SCENARIOS

    for scenario in SCENARIOS.values():
        faults = ", ".join(sorted({f.kind for f in scenario.faults})) or "-"
        table.add_row(
            scenario.name, str(ALL_PRESETS[scenario.preset].n_servers), faults, scenario.description
        )
    console.print(table)


@cli.command()
def simulate(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Data directory to write (created).", metavar="DIR")
    ],
    scenario: ScenarioOpt = None,
    days: Annotated[float, typer.Option(help="Simulated days.", min=0, metavar="DAYS")] = 0,
    hours: Annotated[
        float, typer.Option(help="Simulated hours (added to --days).", min=0, metavar="HOURS")
    ] = 0,
    seed: SeedOpt = None,
    clusters: ClustersOpt = None,
    random_faults_mtbf: MtbfOpt = None,
    start: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Simulated start (UTC) \\[default: midnight, so that the data ends today].",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            show_default=False,
            metavar="DATE[THH:MM:SS]",
        ),
    ] = None,
    append: Annotated[
        bool,
        typer.Option(
            "--append",
            help="Into a store that holds data: continue after its last instant.",
        ),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Into a store that holds data: delete it and start over."),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Generate a scenario's data as fast as possible into a store, with the fault labels.
    Refuses a store that already holds data unless --append or --replace says what to do."""
    duration_s = days * 86_400 + hours * 3_600
    if duration_s <= 0:
        raise typer.BadParameter("give a duration: --days and/or --hours", param_hint="--days")
    if append and replace:
        raise typer.BadParameter("give --append or --replace, not both", param_hint="--append")
    settings = _settings(
        config,
        twin={
            "scenario": scenario,
            "seed": seed,
            "clusters": clusters,
            "random_fault_mtbf_days": random_faults_mtbf,
        },
    )
    start_ms = None
    if start is not None:
        start_ms = int(start.replace(tzinfo=dt.UTC).timestamp() * 1000)
    from rackwatch import app

    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f} %"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("simulate", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = app.simulate(
            settings,
            duration_s=duration_s,
            out=out,
            start_ms=start_ms,
            mode="append" if append else "replace" if replace else "new",
            on_progress=progress,
        )
    table = Table.grid(padding=(0, 2))
    rate = summary.n_samples / summary.seconds if summary.seconds else math.inf
    rows = [
        ("scenario", f"{summary.scenario} (seed {settings.twin.seed})"),
        ("servers", str(summary.n_servers)),
        ("series", str(summary.n_series)),
        ("samples", f"{summary.n_samples:,}"),
        ("faults injected", str(summary.n_faults)),
        ("simulated", f"{_utc(summary.start_ms)} → {_utc(summary.end_ms)}"),
        ("seconds taken", f"{summary.seconds:.1f} ({rate / 1e6:.1f} M samples/s)"),
        (
            "store",
            f"{app.store_path(out)} ({summary.store_bytes / 1e6:.1f} MB, "
            f"{summary.store_bytes / max(summary.n_samples, 1):.2f} bytes/sample)",
        ),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}", value)
    console.print(Panel(table, title="rackwatch simulate", expand=False))


@cli.command()
def run(
    scenario: ScenarioOpt = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds per wall second \\[default: 1, real time].",
            show_default=False,
            metavar="X",
        ),
    ] = None,
    seed: SeedOpt = None,
    clusters: ClustersOpt = None,
    random_faults_mtbf: MtbfOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to serve on \\[default: 127.0.0.1; 0.0.0.0 for every interface].",
            show_default=False,
            metavar="ADDRESS",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="HTTP port; 0 picks a free one \\[default: 8000].",
            show_default=False,
            metavar="PORT",
        ),
    ] = None,
    no_host: Annotated[
        bool,
        typer.Option(
            "--no-host",
            help="Do not watch this machine beside the twin \\[default: it is watched, as "
            "host/<hostname>].",
            show_default=False,
        ),
    ] = False,
    no_twin: Annotated[
        bool,
        typer.Option(
            "--no-twin",
            help="Run without the simulated room: real machines only (this host, agents, scrapes).",
            show_default=False,
        ),
    ] = False,
    scrape: Annotated[
        list[str] | None,
        typer.Option(
            help="Also scrape this Prometheus text endpoint every 5 s, e.g. "
            "http://127.0.0.1:9100/metrics (repeatable; more options in [[scrape]] of the "
            "settings file).",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Also take the sensors and fans of this MQTT broker, e.g. mqtt://127.0.0.1:1883 "
            "(docs/MQTT.md; user, password and more in [mqtt] of the settings file).",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            help="The bus the parts talk through: memory (in-process) or a NATS server with "
            "JetStream, e.g. nats://127.0.0.1:4222 (docs/BUS.md) \\[default: memory].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Where to store: duckdb (in --data-dir) or a PostgreSQL server, e.g. "
            "postgresql://postgres@127.0.0.1:5432/rackwatch (docs/STORAGE.md) \\[default: duckdb].",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """The main job: run the twin live and watch this machine, store everything, serve the
    dashboard, the API and /metrics, show a live summary. Ctrl-C stops."""
    settings = _settings(
        config,
        data_dir=data_dir,
        twin={
            "scenario": scenario,
            "seed": seed,
            "clusters": clusters,
            "speed": speed,
            "random_fault_mtbf_days": random_faults_mtbf,
        },
        server={"host": host, "port": port},
        host={"enabled": False if no_host else None},
        mqtt={"url": mqtt},
        bus={"url": bus},
        store={"url": store},
    )
    if no_twin:
        settings = settings.model_copy(
            update={"twin": settings.twin.model_copy(update={"enabled": False})}
        )
    if scrape:
        from rackwatch.settings import ScrapeSettings

        extra = [ScrapeSettings(url=url) for url in scrape]
        settings = settings.model_copy(update={"scrape": [*settings.scrape, *extra]})
    _check_can_serve(settings.server.host, settings.server.port)  # before anything is written
    from rackwatch import app
    from rackwatch.readout import server_file

    services = app.build_services(settings)
    token_file = app.ensure_control_token(settings)
    store_file = _store_name(settings)
    console.print(f"rackwatch {__version__}: {_watching(services)}, storing in {store_file}")
    if (
        services.twin is None
        and services.host is None
        and not services.scrapes
        and services.mqtt is None
        and services.pdus is None
    ):
        console.print(
            "Nothing is collected here: agents push to this server "
            "(`rackwatch agent --server URL --token T`, docs/AGENT.md)."
        )
    if services.resumed_at_ms is not None:
        console.print(
            f"The data directory already holds this twin's data: the simulated clock "
            f"continues after it, at {_utc(services.resumed_at_ms)} UTC."
        )
    if token_file is not None:
        console.print(
            f"A control token (to change fans, acknowledge alerts…) was written to {token_file}; "
            "more with `rackwatch token create`."
        )
    console.print("Press Ctrl-C to stop.")
    try:
        asyncio.run(_run_with_summary(services))
    except RackwatchError as exc:  # a bus that does not answer: one line, not a traceback
        console.print()  # the live panel leaves the cursor on its last line
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        server_file.discard(settings.data_dir)  # the server has stopped answering
        services.close()
    console.print()  # the live panel leaves the cursor on its last line
    console.print(
        f"stopped: {services.writer.n_samples:,} samples and "
        f"{services.writer.n_events} events written to {_store_name(settings)}"
    )


cli.command(name="devices")(cli_devices.devices)
cli.command(name="mcp")(cli_mcp.mcp)
cli.command(name="worker")(cli_worker.worker)
cli.command(name="serve")(cli_worker.serve)


@cli.command()
def agent(
    server: Annotated[
        str | None,
        typer.Option(
            help="The rackwatch server to push to, e.g. http://10.0.0.5:8000.", metavar="URL"
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RACKWATCH_AGENT_TOKEN",
            help="An ingest token from `rackwatch token create --scope ingest` on the server "
            "(better in the environment than on the command line).",
            metavar="TOKEN",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="This host's name in rackwatch \\[default: the hostname].",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option(help="Seconds between collections.", min=0.5, max=3600, metavar="S"),
    ] = 5.0,
    buffer: Annotated[
        Path,
        typer.Option(
            help="Where collections wait until the server takes them (bounded, 64 MiB).",
            metavar="DIR",
        ),
    ] = Path("rackwatch-agent-buffer"),
    nats: Annotated[
        str | None,
        typer.Option(
            help="Publish on this NATS bus instead of (or as well as) pushing to a server, e.g. "
            "nats://127.0.0.1:4222: for a site run by `rackwatch worker` (docs/SCALE.md; "
            "\\[bus] prefix and partitions from --config).",
            metavar="URL",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Settings file (\\[bus] prefix and partitions).", metavar="FILE"),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help="Also serve this host's monitoring WebSocket (docs/AGENT.md) on HOST:PORT, "
            "e.g. 127.0.0.1:8765.",
            metavar="HOST:PORT",
        ),
    ] = None,
) -> None:
    """Watch this machine (CPU, memory, disks, network, sensors, GPUs): push it to a rackwatch
    server (what the server does not take yet waits on disk), and/or serve it live on a
    WebSocket. Ctrl-C stops."""
    from rackwatch.agent.protocol import parse_listen
    from rackwatch.agent.service import Agent, AgentConfig

    if server is not None and not server.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{server!r} is not an http(s) URL", param_hint="--server")
    if nats is not None and not nats.startswith(("nats://", "tls://")):
        raise typer.BadParameter(f"{nats!r} is not a nats:// URL", param_hint="--nats")
    from rackwatch.settings import load_settings

    bus_settings = load_settings(config).bus
    try:
        address = None if listen is None else parse_listen(listen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None
    try:
        the_agent = Agent(
            AgentConfig(
                server=server,
                token=token,
                name=name,
                interval_s=interval,
                buffer_dir=buffer,
                listen=address,
                nats=nats,
                nats_prefix=bus_settings.prefix,
                partitions=bus_settings.partitions,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    doing = []
    if server is not None:
        doing.append(f"pushing to {server} (buffer {buffer})")
    if nats is not None:
        doing.append(f"publishing on {nats}")
    if address is not None:
        doing.append(f"serving ws://{address[0]}:{address[1]}/")
    console.print(
        f"rackwatch agent {__version__}: [bold]host/{the_agent.name}[/] every {interval:g} s, "
        f"{' and '.join(doing)}. Press Ctrl-C to stop."
    )
    try:
        asyncio.run(_run_agent(the_agent))
    except OSError as exc:
        if the_agent.publisher is not None and listen is None:
            raise typer.BadParameter(
                f"cannot reach NATS at {nats}: {exc}", param_hint="--nats"
            ) from None
        raise typer.BadParameter(
            f"cannot serve on {listen}: {exc}", param_hint="--listen"
        ) from None
    pusher = the_agent.pusher
    if pusher is not None and the_agent.buffer is not None:
        console.print(
            f"stopped: {the_agent.loop.n_collections} collections, {pusher.stats.sent} pushed, "
            f"{the_agent.buffer.n_pending} waiting in {buffer} for the next start"
        )
    if the_agent.publisher is not None:
        console.print(
            f"stopped: {the_agent.publisher.n_published} collections published on {nats}, "
            f"{the_agent.publisher.n_failed} lost"
        )


async def _run_agent(the_agent: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await the_agent.run(stop)


def _store_name(settings: Settings) -> str:
    """The store for people: the DuckDB file, or the PostgreSQL server (no credentials)."""
    from rackwatch import app

    url = settings.store.url
    if url == "duckdb":
        return str(app.store_path(settings.data_dir))
    return f"PostgreSQL at {url.split('@')[-1]}"


def _check_can_serve(host: str, port: int) -> None:
    """Refuse at once when the address cannot be served (a port in use, an unknown host),
    before the data directory, a token or a store is created."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise typer.BadParameter(
            f"cannot serve on {host}:{port} ({reason}): stop the program using it, or give "
            "another --port (0 picks a free one) or --host",
            param_hint="--port",
        ) from None


async def _run_with_summary(services: app.Services) -> None:
    from rackwatch import app
    from rackwatch.readout import server_file

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def serving(url: str) -> None:
        server_file.record(services.settings.data_dir, url)  # for `rackwatch query`
        console.print(
            f"Dashboard: [bold link={url}]{url}[/]  (API docs {url}docs, metrics {url}metrics)"
        )

    runner = asyncio.create_task(app.run_live(services, stop, serve_http=True, on_serving=serving))
    with Live(_render(services), console=console, refresh_per_second=2, transient=False) as live:
        while not runner.done():
            await asyncio.wait({runner}, timeout=0.5)
            live.update(_render(services))
    await runner


def _watching(services: app.Services) -> str:
    """What `rackwatch run` watches, in a line: the twin, this host, the scraped endpoints."""
    parts = []
    twin = services.twin
    if twin is not None:
        parts.append(
            f"scenario [bold]{twin.name}[/] ({twin.topology.n_servers} servers, "
            f"{len(twin.series_keys)} series) at {services.settings.twin.speed:g}x"
        )
    if services.host is not None:
        from rackwatch.sources.host.machine import host_name

        name = host_name(services.settings.host.name)
        parts.append(f"this machine as [bold]host/{escape(name)}[/]")
    if services.scrapes:
        urls = ", ".join(escape(s.scraper.target.url) for s in services.scrapes)
        parts.append(f"scraping {urls}")
    if services.mqtt is not None:
        controller = services.mqtt_controller
        driven = 0 if controller is None else controller.layout.n_servers
        parts.append(
            f"MQTT devices on {escape(services.mqtt.address.display)} "
            f"(fans of {driven} announced at start driven)"
        )
    if services.pdus is not None:
        parts.append(f"{len(services.pdus.targets)} PDU(s) over SNMP")
    return "; ".join(parts) if parts else "no twin, no local source"


def _render(services: app.Services) -> Panel:
    from rackwatch.engine.summary import summarize
    from rackwatch.model import Severity

    room = summarize(services.live, services.registry)
    poller, writer = services.poller, services.writer
    head = Table.grid(padding=(0, 2))
    if poller is not None:
        sim = _utc(room.sim_time_ms) if room.sim_time_ms is not None else "starting…"
        head.add_row(
            "[bold]simulated time",
            sim,
            "[bold]speed",
            f"{poller.speed:g}x"
            + (f" (behind by {poller.lag_steps} steps)" if poller.lag_steps > 1 else ""),
        )
    head.add_row(
        "[bold]samples stored", f"{writer.n_samples:,}", "[bold]events", str(writer.n_events)
    )
    if poller is not None:
        head.add_row(
            "[bold]IT power",
            _shown(room.it_power_watts / 1000, ".2f", " kW"),
            "[bold]facility",
            _shown(room.facility_power_watts / 1000, ".2f", " kW")
            + "  PUE "
            + _shown(room.pue_ratio, ".2f"),
        )
    head.add_row(
        "[bold]series reporting",
        f"{room.n_series_reporting}/{room.n_series}",
        "[bold]CRAC supply" if poller is not None else "",
        _shown(room.crac_supply_temperature_celsius, ".1f", " °C") if poller is not None else "",
    )
    alerts = services.alerts.active_alerts()
    critical = sum(a.severity >= Severity.CRITICAL for a in alerts)
    head.add_row(
        "[bold]active alerts",
        f"{len(alerts)}" + (f" ([red]{critical} critical[/])" if critical else ""),
        "",
        "",
    )
    if services.mqtt is not None:
        m = services.mqtt
        online = sum(d.is_online for d in m.inventory.devices.values())
        head.add_row(
            "[bold]MQTT devices",
            f"{online}/{len(m.inventory.devices)} online"
            + ("" if m.connected.is_set() else " ([red]broker away[/])"),
            "[bold]bad payloads",
            f"{m.n_bad_payloads:,}"
            + f"  fan commands {m.n_confirmed}/{m.n_commands_sent} confirmed"
            + (f", {m.n_timeouts} timed out" if m.n_timeouts else ""),
        )
    title = "rackwatch run · " + (services.twin.name if services.twin else "real machines")
    if services.twin is None:
        return Panel(Group(head, _retention_line(services)), title=title, expand=False)
    hot = Table("hottest servers", "CPU °C", box=None)
    warm, hot_c = _cpu_thresholds(services.settings)
    for server, celsius in room.hottest:
        colour = "red" if celsius >= hot_c else "yellow" if celsius >= warm else "green"
        hot.add_row(server, f"[{colour}]{celsius:.1f}")
    fans = ", ".join(room.fans_stopped) or "none"
    return Panel(
        Group(head, hot, f"[bold]fans stopped:[/] {fans}", _retention_line(services)),
        title=title,
        expand=False,
    )


def _cpu_thresholds(settings: Settings) -> tuple[float, float]:
    """The CPU temperature rule's warning and critical levels: the terminal colours a server
    as the alerts will judge it (defaults 80 and 90 °C, as on the dashboard's scale)."""
    for rule in settings.alerts.active_rules():
        if rule.metric == "cpu_temperature_celsius" and rule.kind == "threshold":
            warning = rule.warning if rule.warning is not None else math.inf
            critical = rule.critical if rule.critical is not None else math.inf
            return warning, critical
    return 80.0, 90.0


def _shown(value: float, spec: str, unit: str = "") -> str:
    """A reading for the terminal; a dash before the first one arrives (never "nan")."""
    return "-" if math.isnan(value) else f"{value:{spec}}{unit}"


def _retention_line(services: app.Services) -> str:
    last = services.retention.last
    if last is None:
        return "[bold]retention:[/] not run yet"
    total = services.retention.deleted_total
    deleted = ", ".join(f"{total.get(tier, 0):,} {tier}" for tier in ("raw", "1m", "1h"))
    return (
        f"[bold]retention:[/] last run {_utc(last.at_ms)} UTC; rows deleted since start: {deleted}"
    )


EntityOpt = Annotated[
    str, typer.Option(help="Entity glob: `*` one level, `**` any.", metavar="GLOB")
]
MetricOpt = Annotated[
    list[str] | None,
    typer.Option(help="Metric name or glob (repeatable).", show_default=False, metavar="NAME"),
]
ReadTokenOpt = Annotated[
    str | None,
    typer.Option(
        envvar="RACKWATCH_TOKEN",
        metavar="TOKEN",
        help="Token for a running server that wants one for reads \\[default: the data "
        "directory's control-token.txt].",
        show_default=False,
    ),
]


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@cli.command()
def query(
    entity: EntityOpt = "**",
    metric: MetricOpt = None,
    since: Annotated[
        str,
        typer.Option(help="How far back from the newest sample: 30m, 6h, 7d.", metavar="DURATION"),
    ] = "1h",
    step: Annotated[
        str | None,
        typer.Option(
            help="Bucket: 5s, 1m, 1h… (picks the tier), or raw for the samples themselves "
            "\\[default: raw samples, while the range is still kept raw].",
            show_default=False,
            metavar="DURATION|raw",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (for people), csv or json (for programs).",
            metavar="table|csv|json",
        ),
    ] = OutputFormat.TABLE,
    token: ReadTokenOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print stored series: one section per series with its rows or buckets (times in UTC).

    While `rackwatch run` holds the store, the rows come through its REST API (it records
    where it serves in the data directory's server.json): the same rows as from the store.

    Columns: value for raw samples; open, high, low, close, avg, count, missing for buckets
    (the time is the bucket's start). --format csv: a header line
    timestamp,ts_ms,entity,metric,<columns>, then a line per row; timestamp is ISO 8601 UTC
    with Z, a NaN reading an empty field. --format json: one object {"tier", "bucket_ms",
    "from_ms", "to_ms", "columns", "units", "rows": \\[{"timestamp", "ts_ms", "entity",
    "metric", <columns>}, …]}, NaN as null. Data goes to stdout, messages to stderr.
    """
    from rackwatch.readout import formats
    from rackwatch.readout.fetch import NoSeries, ReadoutError, UnknownMetric, fetch_answer

    request = _query_request(entity, metric, since, step)
    stored, open_local = _stored(data_dir, config)
    try:
        answer = fetch_answer(open_local, stored, request, token, on_remote=_read_remotely)
    except UnknownMetric as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    except NoSeries as exc:
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except ReadoutError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        formats.write(answer, sys.stdout, output_format.value, width=console.width)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: stop quietly, and keep Python's exit flush quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None


def _query_request(entity: str, metric: list[str] | None, since: str, step: str | None) -> Request:
    from rackwatch.api.params import ParamError, check_entity_glob, check_metric_globs, parse_step
    from rackwatch.readout.fetch import Request

    try:
        entity = check_entity_glob(entity)
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--entity") from None
    try:
        metrics = check_metric_globs(metric)
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    raw = step is not None and step.strip().lower() == "raw"
    step_ms = None
    if step is not None and not raw:
        try:
            step_ms = parse_step(step)
        except ParamError as exc:
            message = f"{exc}; or raw for the samples themselves"
            raise typer.BadParameter(message, param_hint="--step") from None
    return Request(
        entity=entity,
        metrics=tuple(metrics) if metrics else None,
        since_ms=_duration_ms(since, "--since"),
        step_ms=step_ms,
        raw=raw,
    )


def _stored(data_dir: Path | None, config: Path | None) -> tuple[Path, OpenStore]:
    """The data directory of the read-back commands and an opener of its store; a directory
    without a store is refused (--data-dir)."""
    from rackwatch import app
    from rackwatch.model import SeriesRegistry
    from rackwatch.settings import load_settings

    settings = load_settings(config, data_dir=data_dir)
    if not app.store_path(settings.data_dir).exists():
        raise typer.BadParameter(
            f"no store in {settings.data_dir}: run `rackwatch simulate --out "
            f"{settings.data_dir}` or `rackwatch run` first",
            param_hint="--data-dir",
        )

    def open_local() -> tuple[Store, Sequence[SeriesKey]]:
        registry = SeriesRegistry()
        return app.open_store(settings, registry), registry.keys()

    return settings.data_dir, open_local


def _read_remotely(url: str) -> None:
    err.print(
        f"read through the running server at {url} (it holds the store)",
        markup=False,
        soft_wrap=True,
    )


cli.command(name="recommend")(recommend_command)
cli.command(name="energy")(energy_command)
cli.command(name="report")(report_command)


@cli.command()
def export(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Start (UTC): 2026-01-01, 2026-01-01T06:00:00, epoch ms, or -7d (before now).",
            metavar="TIME",
            show_default=False,
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option(
            help="End, excluded (as --from) \\[default: the newest sample, included].",
            metavar="TIME",
            show_default=False,
        ),
    ] = None,
    entity: EntityOpt = "**",
    metric: MetricOpt = None,
    step: Annotated[
        str,
        typer.Option(
            help="raw for the samples, or buckets: 1m, 1h (the rollup tiers), 5m, 90s…",
            metavar="raw|DURATION",
        ),
    ] = "raw",
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="jsonl (a file per UTC day) or parquet (Hive-style archive: a file per UTC day "
            "and metric, docs/ARCHIVE.md).",
            metavar="jsonl|parquet",
        ),
    ] = "jsonl",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Directory to write (created) \\[default: ./monitoring_data].",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    max_bytes: Annotated[
        str | None,
        typer.Option(
            help="JSON lines: most bytes a file holds on disk (compressed, with --gzip); a "
            "larger day goes on in parts .1, .2… (10M, 512K, 1G: 1024-based) \\[default: 10M].",
            show_default=False,
            metavar="N",
        ),
    ] = None,
    use_gzip: Annotated[
        bool | None,
        typer.Option(
            "--gzip/--no-gzip",
            help="JSON lines: compress with gzip (.jsonl.gz) \\[default: no-gzip].",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the files of the exported days already there."),
    ] = False,
    token: ReadTokenOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write stored series to files: JSON lines, a file per UTC day, or Parquet.

    JSON lines: monitoring_YYYYMMDD.jsonl (.jsonl.gz with --gzip), one object per row as in
    `query --format json` ({"timestamp", "ts_ms", "entity", "metric", "value"}, or the
    bucket columns), in time order; a day larger than --max-bytes goes on in
    monitoring_YYYYMMDD.1.jsonl, .2.jsonl… Parquet (Hive-style, docs/ARCHIVE.md):
    DIR/tier=<tier>/date=YYYY-MM-DD/metric=<metric>/part-0.parquet. Files
    appear whole, a day at a time; existing ones are never replaced without --force. While
    `rackwatch run` holds the store, the rows come through its REST API.
    """
    import time

    from rackwatch.readout import export as exporting
    from rackwatch.readout.fetch import ReadoutError, UnknownMetric

    request = _query_request(entity, metric, "1h", step)  # (--since is query's: unused)
    try:
        opts = exporting.options(out, output_format, use_gzip, max_bytes, force)
        start_ms, to_ms = exporting.parse_range(from_, to, int(time.time() * 1000))
    except exporting.ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    stored, open_local = _stored(data_dir, config)
    try:
        source = exporting.open_source(
            open_local, stored, request.entity, request.metrics, token, on_remote=_read_remotely
        )
        try:
            plan = exporting.plan(source, start_ms, to_ms, request.step_ms, opts.output_format)
            with Progress(
                TextColumn("[bold]exporting"),
                BarColumn(),
                TextColumn("{task.completed:.1f}/{task.total} days"),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("export", total=len(plan.days), rows=0)

                def progress(days: float, rows: int) -> None:
                    bar.update(task, completed=days, rows=rows)

                summary = exporting.export(source, plan, opts, on_progress=progress)
        finally:
            source.close()
    except UnknownMetric as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    except exporting.ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    except (ReadoutError, OSError) as exc:  # NoSeries too: an export that writes nothing failed
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table.grid(padding=(0, 2))
    for name, value in exporting.summary_rows(summary, opts.out_dir):
        table.add_row(f"[bold]{name}", escape(value))
    console.print(Panel(table, title="rackwatch export", expand=False))


@cli.command()
def plot(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The picture to write: FILE.png or FILE.svg.", metavar="FILE"
        ),
    ],
    entity: EntityOpt = "**",
    metric: MetricOpt = None,
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Start (UTC): 2026-01-01, 2026-01-01T06:00:00, epoch ms, or -7d (before now).",
            metavar="TIME",
        ),
    ] = "-1d",
    to: Annotated[
        str | None,
        typer.Option(
            help="End, excluded (as --from) \\[default: now].", metavar="TIME", show_default=False
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            help="Bucket width (1m, 1h…) or raw \\[default: about 1,500 points per line].",
            show_default=False,
            metavar="DURATION|raw",
        ),
    ] = None,
    width: Annotated[int, typer.Option(help="Pixels.", min=300, max=4000)] = 1200,
    height: Annotated[int, typer.Option(help="Pixels.", min=200, max=3000)] = 500,
    token: ReadTokenOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Draw stored series over a period to a PNG or SVG file.

    A machine's power and load, say: `--entity c01/r01/s03 --metric power_watts --metric
    cpu_utilization_ratio --out s03.png`. One line per series (at most 12), buckets with
    their low-high band, a second unit on the right axis. While `rackwatch run` holds the
    store, the rows come through its REST API, which draws the same picture at
    GET /api/v1/plot.
    """
    import time

    from rackwatch.readout import export as exporting
    from rackwatch.readout import plot as plotting
    from rackwatch.readout.fetch import ReadoutError, UnknownMetric

    request = _query_request(entity, metric, "1h", step)  # (--since is query's: unused)
    now_ms = int(time.time() * 1000)
    try:
        plotting.image_format(out)
        start_ms, to_ms = exporting.parse_range(from_, to, now_ms)
    except plotting.PlotError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    except exporting.ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    stored, open_local = _stored(data_dir, config)
    try:
        source = exporting.open_source(
            open_local, stored, request.entity, request.metrics, token, on_remote=_read_remotely
        )
        try:
            drawn = plotting.draw(
                source,
                out,
                start_ms,
                now_ms if to_ms is None else to_ms,
                request.step_ms,
                raw=request.raw,
                title=f"{request.entity}: {', '.join(request.metrics or ('every metric',))}",
                width_px=width,
                height_px=height,
            )
        finally:
            source.close()
    except UnknownMetric as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    except plotting.PlotError as exc:
        if exc.option is not None:
            raise typer.BadParameter(str(exc), param_hint=exc.option) from None
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (ReadoutError, OSError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    what = "raw samples" if drawn.bucket_ms == 0 else f"{drawn.bucket_ms // 1000} s buckets"
    console.print(
        f"wrote {escape(str(drawn.path))}: {drawn.n_series} series, {drawn.n_points:,} "
        f"points ({what}), {drawn.n_bytes:,} bytes",
        highlight=False,
    )


@cli.command()
def detect(
    input_csv: Annotated[
        Path, typer.Argument(help="CSV to score: `timestamp,value` lines.", metavar="INPUT.csv")
    ],
    output_csv: Annotated[
        Path,
        typer.Argument(
            help="Where to write `timestamp,value,anomaly_score`.", metavar="OUTPUT.csv"
        ),
    ],
    epoch_unit: Annotated[
        str,
        typer.Option(
            help="Unit of numeric timestamps: s, ms, or auto (ms from 1e11 on).",
            metavar="auto|s|ms",
        ),
    ] = "auto",
) -> None:
    """Score a univariate CSV as a stream: each row against the rows above it only.

    Timestamps: ISO 8601 (no offset = UTC) or epoch seconds/milliseconds, never decreasing;
    a header line is optional; an empty value is a NULL reading. The score is in [0, 1]
    (>= 0.9: anomalous); the first 40 rows are the warm-up (score 0). A refused input
    (the error names its line) writes nothing and exits with 2. See docs/ANOMALY.md.
    """
    from rackwatch.engine.anomaly.csvscore import EPOCH_UNITS, CsvInputError, detect_csv

    if epoch_unit not in EPOCH_UNITS:
        raise typer.BadParameter(f"use one of {', '.join(EPOCH_UNITS)}", param_hint="--epoch-unit")
    try:
        size = input_csv.stat().st_size
    except OSError as exc:
        reason = escape(exc.strerror or str(exc))
        err.print(f"[red]error:[/] cannot read {escape(str(input_csv))}: {reason}", soft_wrap=True)
        raise typer.Exit(2) from None
    with Progress(
        *Progress.get_default_columns(),
        console=err,
        transient=True,
        disable=size < 1_500_000,  # about 90,000 rows: shorter inputs take a second or less
    ) as bar:
        task = bar.add_task("scoring", total=size)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            summary = detect_csv(
                input_csv,
                output_csv,
                epoch_unit=epoch_unit,
                on_progress=progress,
            )
        except (CsvInputError, OSError) as exc:
            bar.stop()
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    err.print(
        f"{summary.rows:,} rows ({summary.timestamps}"
        f"{', header' if summary.has_header else ''}"
        f"{f', {summary.null_rows:,} NULL' if summary.null_rows else ''}) scored in "
        f"{summary.seconds:.2f} s: {summary.anomalies:,} anomalies, {summary.anomalous_rows:,} "
        f"rows >= 0.9, max score {summary.max_score:.3f} -> {escape(str(output_csv))}",
        highlight=False,
        soft_wrap=True,
    )


fans_cli = typer.Typer(help="Fan control: measure the auto policy's saving.", no_args_is_help=True)
cli.add_typer(fans_cli, name="fans")


@fans_cli.command("compare")
def fans_compare(
    scenario: ScenarioOpt = None,
    hours: Annotated[
        float, typer.Option(help="Simulated hours per policy.", min=0.1, metavar="HOURS")
    ] = 24,
    seed: SeedOpt = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="Policies to run: auto, always-high, always-medium, always-low (repeatable) "
            "\\[default: auto and always-high].",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the twin once per fan policy (same seed) and compare fan energy and CPU heat."""
    from rackwatch.engine.control import FanPolicy
    from rackwatch.engine.control.compare import POLICIES, compare_policies

    settings = _settings(config, twin={"scenario": scenario, "seed": seed})
    policies = policy or ["auto", "always-high"]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise typer.BadParameter(
            f"unknown policy {', '.join(unknown)}: use {', '.join(POLICIES)}", param_hint="--policy"
        )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f} %"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks = {p: bar.add_task(f"{p}: {hours:g} h of {settings.twin.scenario}") for p in policies}

        def progress(policy: str, done: int, total: int) -> None:
            bar.update(tasks[policy], completed=done, total=total)

        report = compare_policies(
            settings.twin.scenario,
            hours * 3600,
            settings.twin.seed,
            policies=policies,
            fan_policy=FanPolicy(target_c=settings.control.target_celsius),
            on_progress=progress,
        )
    console.print(report.format(), highlight=False, soft_wrap=True)


@cli.command()
def evaluate(
    seeds: Annotated[
        int | None,
        typer.Option(
            help="How many random seeds, from --first-seed \\[default: 3; 1 with --quick].",
            min=1,
            max=100,
            show_default=False,
            metavar="N",
        ),
    ] = None,
    first_seed: Annotated[
        int,
        typer.Option(
            help="The first seed: 2000 and on were never used for tuning; 0 gives the seeds "
            "the defaults were tuned on (to compare variants without touching the test seeds).",
            min=0,
            max=1_000_000,
            metavar="N",
        ),
    ] = 2000,
    jobs: Annotated[
        int, typer.Option(help="Runs at once, each in its own process.", min=1, max=64, metavar="N")
    ] = 2,
    quick: Annotated[
        bool, typer.Option("--quick", help="A few short runs on the small room (for tests).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the tables.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Only the runs holding this fault kind, or `fault-free` (repeatable, or "
            "comma-separated) \\[default: every run].",
            show_default=False,
            metavar="KIND",
        ),
    ] = None,
) -> None:
    """Measure detection, diagnosis and prediction on the twin: every seed-000 protocol on
    every room size, fault-free rooms and every fault kind of the catalogue, over fresh seeds.

    Prints per fault kind and overall: recall, precision, F1, false alarms per server-day,
    detection latency, diagnosis accuracy, time-to-failure error and seed 000's KPIs, with
    issue 10's targets marked met or not. It reports; it exits 0 whatever the figures
    (docs/EVALUATION.md).
    """
    from rackwatch.engine.evaluation import evaluate as run_evaluation
    from rackwatch.engine.evaluation.grid import FAULT_FREE, RunSpec
    from rackwatch.engine.evaluation.report import as_json as to_json
    from rackwatch.engine.evaluation.report import render
    from rackwatch.engine.evaluation.runner import RunFailure, RunResult
    from rackwatch.twin import FAULTS

    kinds = None if only is None else [k.strip() for o in only for k in o.split(",") if k.strip()]
    unknown = sorted(set(kinds or ()) - set(FAULTS) - {FAULT_FREE})
    if unknown or kinds == []:
        raise typer.BadParameter(
            f"unknown fault kind {', '.join(unknown) or '(none given)'}: use "
            f"{', '.join(sorted(FAULTS))} or {FAULT_FREE}",
            param_hint="--only",
        )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} simulated h"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("building the grid", total=1.0)

        def started(specs: Sequence[RunSpec]) -> None:
            total = sum(s.duration_s for s in specs) / 3600.0
            bar.update(task, total=total, description=f"{len(specs)} runs")

        def done(result: RunResult | RunFailure, n_done: int, n_runs: int) -> None:
            bar.update(
                task,
                advance=result.spec.duration_s / 3600.0,
                description=f"{n_done}/{n_runs} runs ({escape(result.spec.name)})",
            )

        evaluation = run_evaluation(
            seeds or (1 if quick else 3),
            first_seed=first_seed,
            jobs=jobs,
            quick=quick,
            only=kinds,
            on_start=started,
            on_done=done,
        )
    for failed in evaluation.failures:
        err.print(f"[red]run {escape(failed.spec.name)} failed:[/]", highlight=False)
        err.print(escape(failed.trace), highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(to_json(evaluation.as_dict()))
    else:  # a file or a pipe gets the tables whole, not cut to 80 columns
        out = console if console.is_terminal else Console(width=max(console.width, 130))
        out.print(render(evaluation))


import_cli = typer.Typer(help="Bring history in from other tools.", no_args_is_help=True)
cli.add_typer(import_cli, name="import")


@import_cli.command("rrd")
def import_rrd(
    files: Annotated[
        list[Path],
        typer.Argument(help="RRD files (collectd, Ganglia, Munin…).", metavar="FILE..."),
    ],
    entity: Annotated[
        str, typer.Option(help="The entity the series belong to (a machine).", metavar="PATH")
    ],
    metric: Annotated[
        str | None,
        typer.Option(
            help="The metric of a file's one data source \\[default: from the file: collectd's "
            "load.rrd and Ganglia's load_one/five/fifteen.rrd are load_average_1m/5m/15m, "
            "else the file's name].",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    ds: Annotated[
        list[str] | None,
        typer.Option(help="Only this data source (repeatable).", show_default=False),
    ] = None,
    consolidation: Annotated[
        str, typer.Option(help="The archives to read.", metavar="AVERAGE|MAX|MIN|LAST")
    ] = "AVERAGE",
    since: Annotated[
        str | None,
        typer.Option(
            help="Only points from this time on (as export's --from: 2026-01-01, -2h) "
            "\\[default: everything the files keep].",
            show_default=False,
            metavar="TIME",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Import RRD files as one entity's series: every point at the finest resolution the file
    keeps for its period; what the store holds already is not stored twice.

    Seed 003's hourly job, for instance: `rackwatch import rrd /var/lib/collectd/rrd/s03/load/
    load.rrd --entity c01/r01/s03 --since -2h`. See docs/STORAGE.md, "Importing RRD files".
    """
    import time

    from rackwatch import importer
    from rackwatch.app import open_store
    from rackwatch.model import SeriesRegistry
    from rackwatch.readout.export import ExportError, parse_range
    from rackwatch.settings import load_settings
    from rackwatch.sources.rrd import RrdError

    try:
        importer.check_target(entity, metric)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--entity/--metric") from None
    since_s = None
    if since is not None:
        try:
            since_s = parse_range(since, None, int(time.time() * 1000))[0] // 1000
        except ExportError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    settings = load_settings(config, data_dir=data_dir)
    registry = SeriesRegistry()
    try:
        store = open_store(settings, registry)
        try:
            summary = importer.import_rrd(
                store,
                registry,
                files,
                entity,
                metric=metric,
                ds=ds or (),
                since_s=since_s,
                consolidation=consolidation.upper(),
            )
        finally:
            store.close()
    except (RrdError, RackwatchError, OSError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table("file", "data source", "metric", "points", "from (UTC)", "to (UTC)", "every")
    for i in summary.imported:
        table.add_row(
            escape(str(i.path)),
            escape(i.ds),
            escape(i.metric),
            f"{i.n_points:,}",
            "—" if i.first_ms is None else _utc(i.first_ms),
            "—" if i.last_ms is None else _utc(i.last_ms),
            ", ".join(f"{r}s" for r in i.resolutions_s),
        )
    console.print(table)
    console.print(
        f"{summary.n_written:,} points stored for {escape(entity)}, "
        f"{summary.n_skipped:,} already held (or older than the raw retention keeps)",
        highlight=False,
    )


sql_cli = typer.Typer(
    help="Mirror the inventory and history into an SQL database.", no_args_is_help=True
)
cli.add_typer(sql_cli, name="sql")


@sql_cli.command("sync")
def sql_sync(
    url: Annotated[
        str,
        typer.Option(
            help="SQLAlchemy URL: postgresql+psycopg://user@host/db, "
            "mysql+pymysql://user:pass@host/db, sqlite:///powermon.db.",
            metavar="URL",
        ),
    ],
    tier: Annotated[
        str, typer.Option(help="What a row is: a minute's average, an hour's, or a sample.")
    ] = "1m",
    since: Annotated[
        str,
        typer.Option(
            help="Where history starts for a machine the database has no row of yet "
            "(as export's --from).",
            metavar="TIME",
        ),
    ] = "-7d",
    token: ReadTokenOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Mirror PDUs, outlets and machines, and each machine's power and load history, into
    seed 003's tables (pdu, outlet, machine, power_cons, cpu_charge) in any database
    SQLAlchemy speaks.

    Incremental: run it every hour and it copies the last hour, never a row twice. While
    `rackwatch run` holds the store, it reads through its REST API. See docs/STORAGE.md,
    "Mirroring into SQL".
    """
    import time

    from rackwatch.readout import fetch, sqlsync
    from rackwatch.readout.export import ExportError, RemoteSource, parse_range

    try:
        database = sqlsync.database_url(url)
        since_ms = parse_range(since, None, int(time.time() * 1000))[0]
        if tier not in sqlsync.TIERS:
            raise fetch.OptionError(f"use one of {', '.join(sqlsync.TIERS)}", option="--tier")
    except ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    except fetch.OptionError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    stored, open_local = _stored(data_dir, config)

    def local(store: Store, _keys: Sequence[SeriesKey]) -> sqlsync.Source:
        return sqlsync.StoreSource(store, f"the store in {stored}")

    def remote(server_url: str) -> sqlsync.Source:
        metrics = (sqlsync.POWER, *sqlsync.LOADS)
        series = RemoteSource(server_url, "**", metrics, lambda: fetch.read_token(token, stored))
        return sqlsync.ServerSource(series)

    try:
        engine = sqlsync.connect(database)
        try:
            source = fetch.read_through(
                open_local, stored, local, remote, on_remote=_read_remotely, again="sql sync"
            )
            try:
                with Progress(
                    TextColumn("[bold]copying"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total} windows"),
                    TimeElapsedColumn(),
                    console=err,
                    transient=True,
                ) as bar:
                    task = bar.add_task("sync", total=None)

                    def progress(done: int, total: int) -> None:
                        bar.update(task, completed=done, total=total)

                    summary = sqlsync.sync(
                        engine, source, tier=tier, since_ms=since_ms, on_progress=progress
                    )
            finally:
                source.close()
        finally:
            engine.dispose()
    except fetch.OptionError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    except (RackwatchError, OSError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table.grid(padding=(0, 2))
    table.add_row("[bold]database", escape(summary.url))
    for name, counts in (
        ("PDUs", summary.pdus),
        ("machines", summary.machines),
        ("outlets", summary.outlets),
    ):
        table.add_row(
            f"[bold]{name}",
            f"{counts.added} added, {counts.changed} changed, {counts.gone} gone",
        )
    table.add_row("[bold]power_cons", f"{summary.power_rows:,} rows added")
    table.add_row("[bold]cpu_charge", f"{summary.load_rows:,} rows added")
    upto = "nothing stored yet" if summary.to_ms is None else _utc(summary.to_ms)
    table.add_row("[bold]copied up to", upto)
    console.print(Panel(table, title="rackwatch sql sync", expand=False))


inventory_cli = typer.Typer(
    help="The declared inventory: sites, rooms, racks, PDUs, outlets, machines.",
    no_args_is_help=True,
)
cli.add_typer(inventory_cli, name="inventory")


@inventory_cli.command("sync")
def inventory_sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; write nothing.")
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Bring the stored inventory to what the settings declare (`[inventory]` and the file it
    names): added, changed and removed entries, each an inventory.changed event, and the
    values agents or PDUs report otherwise (the declaration wins). `rackwatch run` does it at
    start. See docs/INVENTORY.md.
    """
    import time

    from rackwatch import inventory_config
    from rackwatch.app import open_store
    from rackwatch.engine.inventory import InventoryError
    from rackwatch.model import SeriesRegistry
    from rackwatch.settings import load_settings

    settings = load_settings(config, data_dir=data_dir)
    try:
        inventory_config.declared(settings)  # a bad declaration is refused before the store
        store = open_store(settings, SeriesRegistry())
        try:
            outcome = inventory_config.sync(
                settings, store, int(time.time() * 1000), dry_run=dry_run
            )
        finally:
            store.close()
    except InventoryError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except RackwatchError as exc:
        err.print(
            f"[red]error:[/] {escape(str(exc))} (while `rackwatch run` holds the store, it "
            "syncs the inventory when it starts: restart it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    changes = outcome.plan.changes
    verb = "would be" if dry_run else "were"
    if not outcome.sources:
        console.print("nothing is declared: set [inventory] file, or [[inventory.machines]]…")
    table = Table("change", "kind", "entity", "fields")
    for c in changes:
        table.add_row(c.change, escape(c.kind), escape(c.path), escape(", ".join(c.fields)))
    if changes:
        console.print(table)
    counts = {k: sum(c.change == k for c in changes) for k in ("added", "changed", "removed")}
    console.print(
        f"{counts['added']} added, {counts['changed']} changed, {counts['removed']} removed "
        f"({verb} written) from {escape(', '.join(outcome.sources) or 'nothing')}",
        highlight=False,
    )
    _print_disagreements(outcome.disagreements)


def _print_disagreements(found: Sequence[Disagreement]) -> None:
    if not found:
        return
    table = Table("entity", "field", "declared", "reported", title="disagreements")
    for d in found:
        table.add_row(
            escape(d.path), escape(d.field), escape(str(d.declared)), escape(str(d.discovered))
        )
    console.print(table)
    console.print("the declaration wins: correct the configuration or the machine", highlight=False)


@inventory_cli.command("list")
def inventory_list(
    kind: Annotated[
        str | None, typer.Option(help="Only this kind (machine, pdu, outlet, rack…).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    token: ReadTokenOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the stored inventory: each entity with its kind and attributes, declared or
    discovered, and the disagreements between them. While `rackwatch run` holds the store,
    it reads through its REST API."""
    import json

    from rackwatch.engine.inventory import disagreements
    from rackwatch.readout import fetch
    from rackwatch.store.base import EntityRecord
    from rackwatch.store.inventory import DECLARED

    stored, open_local = _stored(data_dir, config)

    def local(store: Store, _keys: Sequence[SeriesKey]) -> list[EntityRecord]:
        try:
            return store.inventory()
        finally:
            store.close()

    def remote(url: str) -> list[EntityRecord]:
        api = fetch.connect(url, lambda: fetch.read_token(token, stored))
        try:
            answer = api.get("/inventory")
        finally:
            api.client.close()
        return [
            EntityRecord(str(e["path"]), str(e["kind"]), dict(e.get("attributes") or {}))
            for e in answer.get("entities", [])
        ]

    try:
        records = fetch.read_through(
            open_local, stored, local, remote, on_remote=_read_remotely, again="inventory list"
        )
    except RackwatchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    shown = [r for r in records if kind is None or r.kind == kind]
    if as_json:
        for r in shown:
            typer.echo(json.dumps({"path": r.path, "kind": r.kind, "attributes": r.attributes}))
        return
    table = Table("entity", "kind", "from", "attributes")
    for r in shown:
        origin = "declared" if DECLARED in r.attributes else "discovered"
        attrs = {k: v for k, v in r.attributes.items() if k not in (DECLARED, "discovered")}
        text = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
        table.add_row(escape(r.path), escape(r.kind), origin, escape(text[:200]))
    console.print(table)
    console.print(f"{len(shown)} entities", highlight=False)
    _print_disagreements(disagreements(shown))


token_cli = typer.Typer(
    help="Create, list and revoke API tokens (stored hashed).", no_args_is_help=True
)
cli.add_typer(token_cli, name="token")
cli.add_typer(pdu_cli, name="pdu")


def _token_store(data_dir: Path | None, config: Path | None) -> TokenStore:
    from rackwatch.settings import load_settings
    from rackwatch.tokens import TOKENS_FILE, TokenStore

    settings = load_settings(config, data_dir=data_dir)
    return TokenStore(settings.data_dir / TOKENS_FILE)


@token_cli.command("create")
def token_create(
    scope: Annotated[
        str,
        typer.Option(
            help="read (GET routes, WebSocket), ingest (an agent's push, nothing else) or "
            "control (all).",
            metavar="read|control|ingest",
        ),
    ],
    name: Annotated[
        str, typer.Option(help="A note to recognise the token by.", metavar="TEXT")
    ] = "",
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    from rackwatch.tokens import SCOPES

    if scope not in SCOPES:
        raise typer.BadParameter(f"use one of: {', '.join(SCOPES)}", param_hint="--scope")
    secret, info = _token_store(data_dir, config).create(scope, name)
    console.print(f"token [bold]{info.id}[/] ({info.scope}) created; keep it, it is shown once:")
    console.print(secret, soft_wrap=True, highlight=False)


@token_cli.command("list")
def token_list(data_dir: DataDirOpt = None, config: ConfigOpt = None) -> None:
    """List the tokens (their ids, names and scopes; never the secrets)."""
    table = Table("id", "name", "scope", "created")
    for info in _token_store(data_dir, config).list():
        table.add_row(info.id, info.name, info.scope, info.created_at)
    console.print(table)


@token_cli.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The id shown by `rackwatch token list`.")],
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token: it stops working at once."""
    if not _token_store(data_dir, config).revoke(token_id):
        raise typer.BadParameter(f"no token with id {token_id!r}: see `rackwatch token list`")
    console.print(f"token {token_id} revoked")


def _duration_ms(text: str, option: str) -> int:
    from rackwatch.api.params import ParamError, parse_duration_ms

    try:
        return parse_duration_ms(text, option.lstrip("-"))
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    os.umask(0o077)  # telemetry, tokens and logs are private to the user who runs rackwatch
    try:
        cli()
    except RackwatchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
