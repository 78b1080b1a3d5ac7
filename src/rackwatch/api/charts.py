"""A picture of stored series over a period (seed 003's "power and load of a machine"), as PNG
or SVG bytes, for `rackwatch plot` and `GET /plot`.

Drawn with matplotlib's object API (a `Figure` of its own per call, never `pyplot`): no global
state, so pictures can be drawn in worker threads at once. Raw rows are a line; buckets are
their average with a band from their lowest to their highest value. Series of one unit share
the left axis; a second unit gets the right axis (power in watts and load side by side), and
a third is refused: one picture, two scales at most.

>>> import numpy as np
>>> ts = np.arange(0, 3_600_000, 60_000, dtype=np.int64) + 1_767_225_600_000
>>> picture = render(
...     [ChartSeries("s01 power_watts", "watts", ts, np.linspace(150, 300, len(ts)))],
...     title="s01", fmt="svg")
>>> picture.startswith(b"<?xml")
True
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from rackwatch.model import METRICS, SeriesKey
from rackwatch.store.base import QueryResult

ImageFormat = Literal["png", "svg"]
FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
"""Formats and their media types."""
MAX_SERIES = 12
"""Lines one picture holds; more is unreadable (and a glob that matched too much)."""
MAX_UNITS = 2
WIDTH_PX = (300, 4000)
HEIGHT_PX = (200, 3000)
DPI = 100
_SUFFIX_UNITS = (
    ("_watts", "watts"),
    ("_celsius", "celsius"),
    ("_ratio", "ratio"),
    ("_bytes", "bytes"),
    ("_seconds", "seconds"),
    ("_rpm", "rpm"),
    ("_cfm", "cfm"),
)


matplotlib.rcParams["svg.hashsalt"] = "rackwatch"  # SVG ids from the content, not at random


class ChartError(ValueError):
    """The picture cannot be drawn as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class ChartSeries:
    label: str
    unit: str
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64] | None = None
    """With `high`: the band around `value` (a bucket's lowest and highest reading)."""
    high: npt.NDArray[np.float64] | None = None


def unit_of(metric: str) -> str:
    """The catalogue's unit, else one read from the name's suffix, else "" (no unit)."""
    spec = METRICS.get(metric)
    if spec is not None:
        return spec.unit
    return next((unit for suffix, unit in _SUFFIX_UNITS if metric.endswith(suffix)), "")


def series_of(result: QueryResult) -> list[ChartSeries]:
    """Each series of a store answer as a chart series (buckets: the average and its band)."""
    out = []
    for key, rows in result:
        ts = np.asarray(rows["ts"], dtype=np.int64)
        if "value" in rows:
            out.append(ChartSeries(_label(key), unit_of(key.metric), ts, _floats(rows["value"])))
        else:
            out.append(
                ChartSeries(
                    _label(key),
                    unit_of(key.metric),
                    ts,
                    _floats(rows["avg"]),
                    _floats(rows["low"]),
                    _floats(rows["high"]),
                )
            )
    return out


def _label(key: SeriesKey) -> str:
    return f"{key.entity} {key.metric}"


def _floats(values: Any) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def check_size(width_px: int, height_px: int) -> None:
    for name, value, (low, high) in (
        ("width", width_px, WIDTH_PX),
        ("height", height_px, HEIGHT_PX),
    ):
        if not low <= value <= high:
            raise ChartError(f"{name} must be {low}-{high} pixels, got {value}")


def render(
    series: Sequence[ChartSeries],
    *,
    title: str,
    fmt: str = "png",
    width_px: int = 1200,
    height_px: int = 500,
) -> bytes:
    """The picture of `series` (see the module text). ChartError: no series, too many, more
    than two units, an unknown format or a size out of bounds."""
    if fmt not in FORMATS:
        raise ChartError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    check_size(width_px, height_px)
    if not series:
        raise ChartError("no stored series matches: check --entity and --metric, and the range")
    if len(series) > MAX_SERIES:
        raise ChartError(
            f"{len(series)} series match; a picture holds at most {MAX_SERIES}: "
            "narrow the entity or the metrics"
        )
    units = list(dict.fromkeys(s.unit for s in series))
    if len(units) > MAX_UNITS:
        raise ChartError(
            f"the series have {len(units)} units ({', '.join(u or 'none' for u in units)}); "
            f"a picture shows at most {MAX_UNITS}: plot them separately"
        )
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    left = fig.add_subplot()
    axes = {units[0]: left}
    if len(units) == 2:
        axes[units[1]] = left.twinx()
    colours = [f"C{i % 10}" for i in range(len(series))]
    for s, colour in zip(series, colours, strict=True):
        ax = axes[s.unit]
        when = s.ts_ms.astype("datetime64[ms]")
        ax.plot(when, s.value, color=colour, linewidth=1.2, label=s.label)
        if s.low is not None and s.high is not None:
            ax.fill_between(when, s.low, s.high, color=colour, alpha=0.15, linewidth=0)
    for unit, ax in axes.items():
        ax.set_ylabel(unit or "value")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    left.xaxis.set_major_locator(locator)
    left.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    left.set_xlabel("UTC")
    left.grid(True, alpha=0.3)
    left.set_title(title)
    handles = [h for ax in axes.values() for h in ax.get_legend_handles_labels()[0]]
    left.legend(handles=handles, loc="upper left", fontsize="small")
    out = io.BytesIO()
    fig.savefig(out, format=fmt, metadata=_metadata(fmt))
    return out.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    """No creation date or software version in the file: the same data draws the same bytes
    (SVG keeps its date unless told not to)."""
    return {"Date": None} if fmt == "svg" else {"Software": None}
