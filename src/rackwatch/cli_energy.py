"""`rackwatch energy`: kWh, cost, PUE and what the fan policy saved, over a range, per group.

The command's body lives here so that cli.py only registers it. The answer is `account`'s
(engine/energy/accounting.py) on the store, or `GET /api/v1/energy` of the `rackwatch run`
that holds it (the same document: `--format json` prints it). Exit codes: 0 answered, 2 bad
options or the answer could not be read.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rackwatch.cli_options import ConfigOption, DataDirOption, require_store

if TYPE_CHECKING:
    from rackwatch.model import SeriesKey
    from rackwatch.store.base import Store

console = Console()
err = Console(stderr=True)
DASH = "—"


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


class Group(enum.StrEnum):
    SERVER = "server"
    RACK = "rack"
    ROOM = "room"
    SITE = "site"


def energy(
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start: ISO 8601, epoch ms, now or -7d \\[default: today's local midnight].",
            show_default=False,
            metavar="TIME",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(help="End (excluded) \\[default: now].", show_default=False, metavar="TIME"),
    ] = None,
    group: Annotated[
        Group,
        typer.Option(
            help="A row per server, rack or room, or the site.", metavar="server|rack|room|site"
        ),
    ] = Group.SITE,
    entity: Annotated[
        str, typer.Option(help="Entity glob over servers, fans, PDUs.", metavar="GLOB")
    ] = "**",
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (for people) or json (the REST answer).",
            metavar="table|json",
        ),
    ] = OutputFormat.TABLE,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RACKWATCH_TOKEN",
            help="Token for a running server that wants one for reads \\[default: the data "
            "directory's control-token.txt].",
            show_default=False,
            metavar="TOKEN",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Energy over a range: measured and gap-filled kWh, cost at the \\[energy] tariff,
    facility energy and PUE, fan energy and what the fan policy saved against always-high
    (docs/ENERGY.md). Times in UTC unless they say otherwise; the day of the default range
    is the \\[site] time zone's.

    Read through the REST API of the `rackwatch run` holding the store, else from the store."""
    from rackwatch import app
    from rackwatch.api.params import ParamError, check_entity_glob
    from rackwatch.errors import RackwatchError
    from rackwatch.model import SeriesRegistry
    from rackwatch.readout import fetch
    from rackwatch.settings import energy_config, load_settings

    try:
        entity = check_entity_glob(entity)
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--entity") from None
    settings = load_settings(config, data_dir=data_dir)
    require_store(settings)
    setup = energy_config(settings)

    def open_local() -> tuple[Store, Sequence[SeriesKey]]:
        registry = SeriesRegistry()
        return app.open_store(settings, registry), registry.keys()

    def local(store: Store, _keys: Sequence[SeriesKey]) -> dict[str, Any]:
        from rackwatch.engine.energy import account

        try:
            start, end = _range(store, from_, to, setup.tariff.day_bounds)
            report = account(
                store,
                start,
                end,
                group=group.value,
                tariff=setup.tariff,
                pue=setup.pue,
                entity=entity,
            )
        finally:
            store.close()
        return report.to_dict()

    def remote(url: str) -> dict[str, Any]:
        api = fetch.connect(url, lambda: fetch.read_token(token, settings.data_dir))
        params = [("group", group.value), ("entity", entity)]
        params += [(k, v) for k, v in (("from", from_), ("to", to)) if v is not None]
        try:
            answer: dict[str, Any] = api.get("/energy", params)
        finally:
            api.client.close()
        return answer

    try:
        found = fetch.read_through(
            open_local, settings.data_dir, local, remote, on_remote=_read_remotely, again="energy"
        )
    except _BadTime as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    except (RackwatchError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(found, indent=2))
    else:
        _print(found)


class _BadTime(ValueError):
    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def _range(store: Store, from_: str | None, to: str | None, day_bounds: Any) -> tuple[int, int]:
    """[start, end) from the options, the end no later than now (the future has no readings):
    the wall clock, or the newest stored power sample when the data runs ahead of it (a twin
    at --speed > 1), as for the REST API."""
    from rackwatch.api.params import ParamError, parse_time

    latest = store.latest("**", ["power_watts", "it_power_watts"])
    now = int(time.time() * 1000)
    if len(latest.ts):
        now = max(now, int(latest.ts.max()) + 1)
    try:
        end = now if to is None else min(parse_time(to, now_ms=now, name="--to"), now)
    except ParamError as exc:
        raise _BadTime(str(exc), "--to") from None
    try:
        start = (
            day_bounds(end - 1)[0]
            if from_ is None
            else parse_time(from_, now_ms=now, name="--from")
        )
    except ParamError as exc:
        raise _BadTime(str(exc), "--from") from None
    if end <= start:
        raise _BadTime(f"--from ({start}) must be before --to ({end})", "--from")
    return start, end


def _read_remotely(url: str) -> None:
    err.print(
        f"read through the running server at {url} (it holds the store)",
        markup=False,
        soft_wrap=True,
    )


def _num(value: Any, digits: int = 3) -> str:
    return DASH if not isinstance(value, int | float) else f"{value:,.{digits}f}"


def _share(value: Any) -> str:
    return DASH if not isinstance(value, int | float) else f"{100 * value:.1f} %"


def _print(found: dict[str, Any]) -> None:
    cur = found.get("currency", "")
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]range", f"{found['from']} .. {found['to']} ({found['timezone']})")
    head.add_row(
        "[bold]IT energy",
        f"{_num(found['energy_kwh'])} kWh measured, {_num(found['estimated_kwh'])} kWh with "
        f"gaps filled (coverage {_share(found['coverage'])})",
    )
    head.add_row(
        "[bold]cost", f"{_num(found['cost'], 2)} {cur} ({_num(found['estimated_cost'], 2)} est.)"
    )
    head.add_row(
        "[bold]facility",
        f"{_num(found['facility_kwh'])} kWh, {_num(found['facility_cost'], 2)} {cur} "
        f"({found['facility_source'] or 'unknown: set pue in ' + escape('[energy]')})",
    )
    head.add_row("[bold]PUE", f"{_num(found['pue'], 2)} ({found['pue_source'] or 'unknown'})")
    head.add_row("[bold]fans", f"{_num(found['fan_kwh'])} kWh")
    saving = found.get("optimisation")
    if saving:
        head.add_row(
            "[bold]fan policy",
            f"saved {_num(saving['saved_kwh'])} kWh IT ({_share(saving['saving_ratio'])} of "
            f"always-high), {_num(saving['saved_cost'], 2)} {cur}",
        )
    for period in found.get("periods", []):
        head.add_row(
            f"[bold]{escape(period['name'])}",
            f"{_num(period['energy_kwh'])} kWh at {period['price_per_kwh']} {cur}/kWh = "
            f"{_num(period['cost'], 2)} {cur}",
        )
    console.print(head)
    rows = found.get("rows", [])
    if found.get("group") != "site" and rows:
        table = Table(
            found["group"], "kWh", "est. kWh", "coverage", f"cost {cur}", "fan kWh", "meter kWh"
        )
        for row in rows:
            table.add_row(
                escape(row["entity"]),
                _num(row["energy_kwh"]),
                _num(row["estimated_kwh"]),
                _share(row["coverage"]),
                _num(row["cost"], 2),
                _num(row["fan_kwh"]),
                _num(row["metered_kwh"]),
            )
        console.print(table)
