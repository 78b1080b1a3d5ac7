"""`rackwatch plot`: stored series of a period drawn to a PNG or SVG file (seed 003's picture of
a machine's power and load), from the store or, while a `rackwatch run` holds it, through that
server's REST API (as `rackwatch export` reads).

The picture is `api.charts.render`'s, the same as `GET /api/v1/plot`; a range longer than
about 1,500 raw samples is drawn from buckets (`api.routes.plot.auto_step_ms`). The file
appears whole: written under a temporary name, then renamed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rackwatch.api import charts
from rackwatch.api.params import ParamError
from rackwatch.api.routes.plot import auto_step_ms, check_points
from rackwatch.readout.export import Source
from rackwatch.readout.fetch import OptionError
from rackwatch.store.base import Query


class PlotError(OptionError):
    """The picture cannot be made as asked; `option` names the option to change."""


@dataclass(frozen=True, slots=True)
class Drawn:
    path: Path
    n_series: int
    n_points: int
    bucket_ms: int
    """0: raw samples."""
    n_bytes: int


def image_format(out: Path) -> str:
    """The format the output file's suffix asks for."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in charts.FORMATS:
        raise PlotError(f"the output must end in .png or .svg, got {out.name!r}", option="--out")
    return fmt


def draw(
    source: Source,
    out: Path,
    start_ms: int,
    end_ms: int,
    step_ms: int | None,
    *,
    raw: bool = False,
    title: str,
    width_px: int = 1200,
    height_px: int = 500,
) -> Drawn:
    """Read [start_ms, end_ms) of the source's series, draw them and write `out`: buckets of
    `step_ms`, raw samples with `raw`, else as many points as a picture wants."""
    fmt = image_format(out)
    if end_ms <= start_ms:
        raise PlotError("--to must come after --from", option="--to")
    step = None if raw else step_ms if step_ms is not None else auto_step_ms(start_ms, end_ms)
    try:
        check_points(start_ms, end_ms, step)
    except ParamError as exc:
        raise PlotError(str(exc), option="--step") from None
    result = source.query(Query(start_ms, end_ms, step_ms=step))
    series = charts.series_of(result)
    try:
        picture = charts.render(
            series, title=title, fmt=fmt, width_px=width_px, height_px=height_px
        )
    except charts.ChartError as exc:
        raise PlotError(str(exc)) from None
    _write_whole(out, picture)
    return Drawn(out, len(series), len(result), result.bucket_ms, len(picture))


def _write_whole(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise PlotError(f"no directory {directory} to write {path.name} in", option="--out")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
