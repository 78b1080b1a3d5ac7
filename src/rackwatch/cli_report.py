"""`rackwatch report`: a day's, week's or month's report (docs/REPORTS.md), made now and
archived in `<data_dir>/reports`; its HTML, JSON or CSV written to `--out` (or stdout with
`--out -`), else its archived path printed.

The command's body lives here so that cli.py only registers it; the work is
`readout/report.py`'s (from the store, or through the running server that holds it). Exit
codes: 0 made, 2 bad options or the report could not be made.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rackwatch.cli_options import ConfigOption, DataDirOption, require_store

if TYPE_CHECKING:
    from rackwatch.model import SeriesKey
    from rackwatch.store.base import Store

console = Console()
err = Console(stderr=True)


class Kind(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Format(enum.StrEnum):
    HTML = "html"
    JSON = "json"
    CSV = "csv"


def report(
    period: Annotated[
        Kind,
        typer.Option("--period", "-p", help="The period's length.", metavar="day|week|month"),
    ],
    date: Annotated[
        str | None,
        typer.Option(
            help="Any day of the period, YYYY-MM-DD, in the \\[site] time zone \\[default: the "
            "last complete period: yesterday, last week, last month].",
            show_default=False,
            metavar="DATE",
        ),
    ] = None,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="html (self-contained, prints well), json or csv (one tidy table).",
            metavar="html|json|csv",
        ),
    ] = Format.HTML,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write it here (- for stdout) \\[default: print the archived file's path].",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RACKWATCH_TOKEN",
            help="Control token for a running server \\[default: the data directory's "
            "control-token.txt].",
            show_default=False,
            metavar="TOKEN",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a daily, weekly or monthly report: per metric average, median, min and max, the
    busiest hour and the busiest and idlest server (CPU), disk use by hour or day, network
    totals, memory, each server's and card's GPU idle rate, the period's alerts, incidents
    and faults, energy and cost, and trend charts (docs/REPORTS.md).

    It is archived in DATA_DIR/reports in every format of \\[reports] formats (replacing
    one made before). While `rackwatch run` holds the store, the running server makes it."""
    from rackwatch import app
    from rackwatch.engine.reports import ReportError, parse_day
    from rackwatch.errors import RackwatchError
    from rackwatch.model import SeriesRegistry
    from rackwatch.readout import report as reporting
    from rackwatch.settings import load_settings

    try:
        day = None if date is None else parse_day(date)
    except ReportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date") from None
    settings = load_settings(config, data_dir=data_dir)
    require_store(settings)

    def open_local() -> tuple[Store, Sequence[SeriesKey]]:
        registry = SeriesRegistry()
        return app.open_store(settings, registry), registry.keys()

    asked = reporting.Asked(period.value, day, output_format.value)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]{period.value} report[/] {{task.description}}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("opening the store")
            made = reporting.make(
                open_local,
                settings.data_dir,
                lambda store: app.build_reporter(settings, store),
                asked,
                token,
                on_stage=lambda stage: bar.update(task, description=stage),
                on_remote=_made_remotely,
            )
    except ReportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date") from None
    except RackwatchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    said = f"{made.name}: made in {made.seconds:.1f} s, archived as {made.archived}"
    if out is None:
        err.print(said, markup=False, highlight=False, soft_wrap=True)
        console.print(str(made.archived), markup=False, highlight=False, soft_wrap=True)
    elif str(out) == "-":
        err.print(said, markup=False, highlight=False, soft_wrap=True)
        try:
            sys.stdout.buffer.write(made.body)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
    else:
        try:
            out.write_bytes(made.body)
        except OSError as exc:
            raise typer.BadParameter(f"cannot write {out}: {exc}", param_hint="--out") from None
        err.print(f"{said}; written to {out}", markup=False, highlight=False, soft_wrap=True)


def _made_remotely(url: str) -> None:
    err.print(
        f"made by the running server at {url} (it holds the store)", markup=False, soft_wrap=True
    )
