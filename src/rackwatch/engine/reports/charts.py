"""The report's charts as inline SVG (matplotlib's object API, a Figure per chart: no pyplot,
no global state, so reports can be drawn in worker threads).

The SVG is made to sit inside an HTML page that loads nothing: the XML prologue, the
DOCTYPE, the metadata block and the namespace declarations (URIs, though never fetched) are
removed, the stylesheet's global selector is left to the page, and every id is prefixed per
chart so that two charts' ids never collide. Text is drawn as glyph outlines, so the page
looks the same on a machine without the font.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from rackwatch.engine.reports.content import Trend

WIDTH_IN, HEIGHT_IN, DPI = 9.6, 2.5, 100
MS = dt.timedelta(milliseconds=1)
COLOURS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed")


@dataclass(frozen=True, slots=True)
class Line:
    metric: str
    label: str
    high: bool = False
    """Draw the trend's `high` (the highest series) instead of its value."""


@dataclass(frozen=True, slots=True)
class ChartSpec:
    title: str
    unit: str
    lines: tuple[Line, ...]


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "CPU utilisation",
        "ratio",
        (
            Line("cpu_utilization_ratio", "fleet average"),
            Line("cpu_utilization_ratio", "busiest machine", high=True),
        ),
    ),
    ChartSpec(
        "Memory utilisation",
        "ratio",
        (
            Line("memory_utilization_ratio", "fleet average"),
            Line("memory_utilization_ratio", "fullest machine", high=True),
        ),
    ),
    ChartSpec(
        "GPU utilisation",
        "ratio",
        (
            Line("gpu_utilization_ratio", "GPU average"),
            Line("gpu_memory_utilization_ratio", "GPU memory average"),
        ),
    ),
    ChartSpec(
        "Network",
        "bytes_per_second",
        (
            Line("network_transmit_bytes_per_second", "up (sent)"),
            Line("network_receive_bytes_per_second", "down (received)"),
        ),
    ),
    ChartSpec(
        "Disk utilisation",
        "ratio",
        (
            Line("disk_utilization_ratio", "average"),
            Line("disk_utilization_ratio", "fullest disk", high=True),
        ),
    ),
    ChartSpec(
        "Power",
        "watts",
        (Line("power_watts", "machines"), Line("gpu_power_watts", "GPUs")),
    ),
    ChartSpec(
        "Temperatures",
        "celsius",
        (
            Line("inlet_temperature_celsius", "inlet"),
            Line("cpu_temperature_celsius", "CPU"),
            Line("gpu_temperature_celsius", "GPU"),
        ),
    ),
)

_SCALES = {
    "bytes": ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB"), (1, "B")),
    "bytes_per_second": ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"), (1, "B/s")),
    "watts": ((1e6, "MW"), (1e3, "kW"), (1, "W")),
}


def scale(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """The divisor and axis label that show `values` of `unit` in readable numbers."""
    if unit == "ratio":
        return 0.01, "%"
    if unit == "celsius":
        return 1.0, "°C"
    finite = [abs(v) for v in values if np.isfinite(v)]
    top = max(finite, default=0.0)
    for divisor, label in _SCALES.get(unit, ()):
        if top >= divisor:
            return divisor, label
    return 1.0, "" if unit not in _SCALES else _SCALES[unit][-1][1]


_PROLOGUE = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<metadata>.*?</metadata>", re.S)
_NAMESPACES = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_STYLE = re.compile(r"<defs>\s*<style[^>]*>.*?</style>\s*</defs>", re.S)
_SIZE = re.compile(r'<svg([^>]*?)\s+width="[^"]*"\s+height="[^"]*"')


def inline_svg(svg: str, prefix: str, label: str) -> str:
    """matplotlib's SVG made fit to sit in a page (see the module's docstring)."""
    svg = _PROLOGUE.sub("", svg)
    svg = _NAMESPACES.sub("", svg)
    svg = _STYLE.sub("", svg)
    svg = svg.replace('id="', f'id="{prefix}-')
    svg = svg.replace('href="#', f'href="#{prefix}-').replace("url(#", f"url(#{prefix}-")
    safe = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    svg = _SIZE.sub(rf'<svg\1 class="chart" role="img" aria-label="{safe}"', svg, count=1)
    return svg.strip()


def _figure() -> Figure:
    # Fixed margins: a layout engine would draw each chart several times (3x the cost).
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    fig.subplots_adjust(left=0.075, right=0.99, top=0.88, bottom=0.14)
    return fig


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()


def _local(ts_ms: Sequence[int], zone: ZoneInfo) -> npt.NDArray[np.datetime64]:
    """Local wall times: the axis shows the site's clock (a DST hour repeats or skips)."""
    offsets = [
        (dt.datetime.fromtimestamp(t / 1000, zone).utcoffset() or dt.timedelta()) // MS
        for t in ts_ms
    ]
    wall = np.asarray(ts_ms, dtype=np.int64) + np.asarray(offsets, dtype=np.int64)
    return wall.astype("datetime64[ms]")


def trend_chart(
    spec: ChartSpec, trends: dict[str, Trend], zone: ZoneInfo, prefix: str
) -> str | None:
    """One chart of `spec`'s lines; None when none of its metrics has data."""
    drawn = [(line, trends[line.metric]) for line in spec.lines if line.metric in trends]
    drawn = [(line, t) for line, t in drawn if not line.high or t.high is not None]
    if not drawn:
        return None
    series = []
    for line, trend in drawn:
        raw = trend.high if line.high else trend.value
        assert raw is not None
        values = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
        series.append((line, _local(trend.ts_ms, zone), values))
    divisor, unit_label = scale(spec.unit, [v for _, _, vs in series for v in vs])
    fig = _figure()
    ax = fig.add_subplot()
    for i, (line, when, values) in enumerate(series):
        style = "--" if line.high else "-"
        ax.plot(
            when, values / divisor, style, color=COLOURS[i % len(COLOURS)], lw=1.2, label=line.label
        )
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        ConciseDateFormatter(locator, show_offset=False)  # type: ignore[no-untyped-call]
    )
    ax.set_xlim(series[0][1][0], series[0][1][-1])  # the whole period, data or not
    ax.set_title(spec.title, loc="left", fontsize=10)
    ax.set_ylabel(unit_label)
    ax.grid(True, alpha=0.3)
    if spec.unit == "ratio":
        ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=len(series))
    return inline_svg(_svg(fig), prefix, spec.title)


def bar_chart(
    title: str, labels: Sequence[str], values: Sequence[float | None], unit: str, prefix: str
) -> str | None:
    """Bars of `values` (None: no data) over `labels`; None when there is no value at all."""
    numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if not len(numbers) or np.isnan(numbers).all():
        return None
    divisor, unit_label = scale(unit, list(numbers))
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x, np.nan_to_num(numbers / divisor), color=COLOURS[0], width=0.8)
    step = -(-len(labels) // 12)  # at most 12 labels: each tick costs a few ms to draw
    ax.set_xticks(x[::step], [labels[i] for i in range(0, len(labels), step)], fontsize=7)
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel(unit_label)
    ax.grid(True, axis="y", alpha=0.3)
    return inline_svg(_svg(fig), prefix, title)


def trend_charts(trends: Sequence[Trend], zone: ZoneInfo) -> list[str]:
    """Every chart of CHARTS that has data, in order."""
    by_metric = {t.metric: t for t in trends}
    drawn = (trend_chart(spec, by_metric, zone, f"t{i}") for i, spec in enumerate(CHARTS))
    return [svg for svg in drawn if svg is not None]
