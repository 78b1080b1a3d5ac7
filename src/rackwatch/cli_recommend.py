"""`rackwatch recommend`: which GPU machine to use now (seed 004's `like_server` and
`like_index`), or where a job of N GPUs x M GB (and C cores) fits, best first, with why.

The command's body lives here so that cli.py only registers it. The answer comes through the
REST API of the `rackwatch run` that holds the data directory, else from the store's newest
values and inventory (`readout/recommend.py`). Exit codes: 0 answered, 1 no GPU machine is
known or the job fits nowhere, 2 the answer could not be read.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rackwatch.cli_options import ConfigOption, DataDirOption, require_store

if TYPE_CHECKING:
    from rackwatch.engine.recommend import Job
    from rackwatch.model import SeriesKey
    from rackwatch.store.base import Store

console = Console()
err = Console(stderr=True)
GIB = float(1 << 30)
MAX_LIMIT = 10_000
"""As GET /recommend/placement's `limit`."""
OPTION_OF = {
    "gpus": "--gpus",
    "gpu_memory_gb": "--gpu-memory",
    "cores": "--cores",
    "memory_gb": "--memory",
}
LIKE_STYLE = {"high": "green", "medium": "yellow", "low": "red"}


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def recommend(
    gpus: Annotated[
        int | None,
        typer.Option(
            help="Place a job of this many GPUs (1..64) \\[default: no job: the top 3 and "
            "every machine's like index].",
            show_default=False,
            metavar="N",
        ),
    ] = None,
    gpu_memory: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory",
            help="Free memory the job needs on each GPU, in GB (GiB) \\[default: 0].",
            show_default=False,
            metavar="GB",
        ),
    ] = None,
    cores: Annotated[
        int | None,
        typer.Option(
            help="Free CPU cores the job needs \\[default: 0].", show_default=False, metavar="C"
        ),
    ] = None,
    memory: Annotated[
        float | None,
        typer.Option(
            help="Available memory the job needs, in GB (GiB) \\[default: 0].",
            show_default=False,
            metavar="GB",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            help="A placement's candidates (and rejections) shown.",
            min=1,
            max=MAX_LIMIT,
            metavar="N",
        ),
    ] = 10,
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
        ),
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Recommend GPU machines: the top 3 by free GPU memory and each machine's like index
    (high, medium, low, from its GPU, GPU memory and CPU use); with --gpus (and --gpu-memory,
    --cores, --memory), the machines that can take such a job, best first, each with why, and
    why the others cannot. Offline machines are never recommended.

    While `rackwatch run` holds the store, the answer comes through its REST API; else from
    the newest stored values. --format json prints the REST answer (docs/API.md)."""
    from rackwatch import app
    from rackwatch.model import SeriesRegistry
    from rackwatch.readout.fetch import ReadoutError
    from rackwatch.readout.recommend import Ask, fetch_recommendation
    from rackwatch.settings import load_settings, offline_after_s

    job = None
    if any(x is not None for x in (gpus, gpu_memory, cores, memory)):
        job = _job(gpus, gpu_memory, cores, memory)
    settings = load_settings(config, data_dir=data_dir)
    require_store(settings)

    def open_local() -> tuple[Store, Sequence[SeriesKey]]:
        registry = SeriesRegistry()
        return app.open_store(settings, registry), registry.keys()

    ask = Ask(
        job=job,
        limit=limit,
        host_offline_after_s=offline_after_s(settings),
        stale_after_s=settings.alerts.unknown_after_seconds,
    )
    try:
        answer = fetch_recommendation(
            open_local, settings.data_dir, ask, token, on_remote=_read_remotely
        )
    except ReadoutError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(answer, indent=2))
    elif job is None:
        _print_recommendation(answer)
    else:
        _print_placement(answer)
    if ("machines" in answer and not answer["machines"]) or answer.get("n_candidates") == 0:
        raise typer.Exit(1)


def _job(
    gpus: int | None, gpu_memory: float | None, cores: int | None, memory: float | None
) -> Job:
    """The job, or a usage error naming the option at fault (out of bounds, NaN, infinity)."""
    from rackwatch.engine.recommend import Job, JobError

    try:
        return Job(
            gpus=1 if gpus is None else gpus,
            gpu_memory_gb=0.0 if gpu_memory is None else gpu_memory,
            cores=0 if cores is None else cores,
            memory_gb=0.0 if memory is None else memory,
        )
    except JobError as exc:
        raise typer.BadParameter(str(exc), param_hint=OPTION_OF[exc.field]) from None


def _read_remotely(url: str) -> None:
    err.print(
        f"read through the running server at {url} (it holds the store)",
        markup=False,
        soft_wrap=True,
    )


def _gib(size: float | None) -> str:
    return "—" if size is None else f"{size / GIB:.1f} GiB"


def _pct(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.0f} %"


def _like(level: str | None) -> str:
    if level is None:
        return "—"
    return f"[{LIKE_STYLE[level]}]{level}[/]"


def _source(answer: dict[str, Any]) -> str:
    if answer["source"] == "live":
        return "live"
    import datetime as dt

    when = dt.datetime.fromtimestamp(answer["now_ms"] / 1000, dt.UTC)
    return f"from the store, as of {when:%Y-%m-%d %H:%M:%S} UTC"


def _print_recommendation(answer: dict[str, Any]) -> None:
    machines = answer["machines"]
    if not machines:
        console.print(
            "No GPU machine is known: no series of a card (<machine>/gpu<k>) and no GPU in the "
            "inventory."
        )
        return
    top = Table(
        "rank",
        "machine",
        "free GPU memory",
        "cards",
        "GPUs busy",
        "like",
        title=f"Recommended now: top {len(answer['like_server'])} by free GPU memory "
        f"({_source(answer)})",
    )
    for s in answer["like_server"]:
        top.add_row(
            str(s["rank"]),
            escape(s["entity"]),
            f"{_gib(s['gpu_memory_free_bytes'])} of {_gib(s['gpu_memory_total_bytes'])}",
            str(s["n_cards"]),
            _pct(s["gpu_utilization_ratio"]),
            _like(s["like_index"]),
        )
    if not answer["like_server"]:
        top.caption = "no machine has GPU memory free now"
    console.print(top)
    every = Table(
        "machine",
        "like",
        "free GPU memory",
        "GPUs busy",
        "CPU",
        "cards",
        "why",
        title="Every GPU machine",
    )
    for m in machines:
        every.add_row(
            escape(m["entity"]),
            _like(m["like_index"]) if m["available"] else "[dim]excluded[/]",
            f"{_gib(m['gpu_memory_free_bytes'])} of {_gib(m['gpu_memory_total_bytes'])}",
            _pct(m["gpu_utilization_ratio"]),
            _pct(m["cpu_utilization_ratio"]),
            str(m["n_cards"]),
            escape(m["why"]),
        )
    counts = answer["counts"]
    t = answer["thresholds"]
    every.caption = (
        f"{counts['high']} high, {counts['medium']} medium, {counts['low']} low, "
        f"{counts['excluded']} excluded; like index by the highest of GPU use, GPU memory use "
        f"and CPU use: high below {_pct(t['high_below_ratio'])}, low from "
        f"{_pct(t['low_from_ratio'])}"
    )
    console.print(every)


def _print_placement(answer: dict[str, Any]) -> None:
    job = answer["job"]
    what = f"{job['gpus']} GPU(s) with {job['gpu_memory_gb']:g} GB free each"
    if job["cores"]:
        what += f", {job['cores']} cores"
    if job["memory_gb"]:
        what += f", {job['memory_gb']:g} GB memory"
    fits = Table(
        "rank",
        "machine",
        "cards",
        "tightest free",
        "to spare",
        "cards busy",
        "like",
        "why",
        title=f"Where {what} fits, best first ({_source(answer)})",
    )
    for c in answer["candidates"]:
        fits.add_row(
            str(c["rank"]),
            escape(c["entity"]),
            escape(", ".join(card.rsplit("/", 1)[-1] for card in c["cards"])),
            _gib(c["tightest_free_bytes"]),
            _gib(c["headroom_bytes"]),
            _pct(c["cards_utilization_ratio"]),
            _like(c["like_index"]),
            escape(c["why"]),
        )
    shown = len(answer["candidates"])
    fits.caption = (
        f"{answer['n_candidates']} machine(s) can take it"
        + (f" ({shown} shown)" if shown < answer["n_candidates"] else "")
        + "; ranked by the free memory left on the tightest card taken, then by how busy "
        "those cards are"
    )
    console.print(fits)
    if answer["rejected"]:
        rejected = Table("machine", "why not", title="Cannot take it (closest first)")
        for r in answer["rejected"]:
            rejected.add_row(escape(r["entity"]), escape(r["why"]))
        if len(answer["rejected"]) < answer["n_rejected"]:
            rejected.caption = f"{len(answer['rejected'])} of {answer['n_rejected']} shown"
        console.print(rejected)
