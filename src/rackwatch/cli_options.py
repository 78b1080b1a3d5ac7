"""Options and checks the read-back commands share (`energy`, `report`, `recommend`, `mcp`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rackwatch.settings import Settings

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the store lives \\[default: ./rackwatch-data].",
        show_default=False,
        metavar="DIR",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file.", show_default=False, metavar="FILE"),
]


def require_store(settings: Settings) -> None:
    """Refuse a data directory with no store yet (--data-dir), saying how to make one."""
    from rackwatch import app

    if not app.store_path(settings.data_dir).exists():
        raise typer.BadParameter(
            f"no store in {settings.data_dir}: run `rackwatch run` (or `rackwatch simulate "
            f"--out {settings.data_dir}`) first",
            param_hint="--data-dir",
        )
