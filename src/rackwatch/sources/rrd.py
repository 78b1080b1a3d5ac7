"""Round-robin databases (RRD files, as collectd, Ganglia, Munin or Cacti write them) read as
samples: seed 003 moves each machine's load averages from its RRD files into its database
every hour (`getLoadFromRRD.py`).

An RRD holds one or more data sources (DS) and, per consolidation function (AVERAGE, MAX…),
archives (RRA) of decreasing resolution: five-minute points for a day, hourly points for a
month… `read` takes every archive of the consolidation asked for and keeps, for each period,
the finest that covers it: the newest hours at full resolution, older ones coarser, never the
same period twice. A point stands for the interval that ends at its timestamp, so that is the
sample's instant. Unknown points (NaN: the collector was down) are gaps, not readings.

The metric each DS becomes (`metric_names`): collectd's `load.rrd` (shortterm, midterm,
longterm) and Ganglia's `load_one/five/fifteen.rrd` are the catalogue's
`load_average_1m/5m/15m`; any other file is `<file name>` for a single DS (or one named
`value`, `sum`), else `<file name>_<ds>`, in the metric alphabet (a-z, 0-9, _).

Reading uses the rrdtool library (Python binding of librrd: `pip install rrdtool`, which needs
Debian's `librrd-dev` to build), imported when a file is read, so the rest of rackwatch runs
without it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.errors import RackwatchError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CONSOLIDATIONS = ("AVERAGE", "MAX", "MIN", "LAST")
MAX_ABS_VALUE = 1e15
"""A reading beyond this is not a measurement (a corrupt file, a counter wrap): dropped."""
MAX_POINTS = 50_000_000
"""The most points one file may give (a sane RRD holds a few hundred thousand)."""
KNOWN_FILES: dict[str, dict[str, str]] = {
    # collectd's load plugin
    "load": {
        "shortterm": "load_average_1m",
        "midterm": "load_average_5m",
        "longterm": "load_average_15m",
    },
    # Ganglia's gmond metrics: one file per metric, its DS is "sum"
    "load_one": {"sum": "load_average_1m"},
    "load_five": {"sum": "load_average_5m"},
    "load_fifteen": {"sum": "load_average_15m"},
}
_PLAIN_DS = frozenset({"value", "sum"})
_NOT_IN_METRIC = re.compile(r"[^a-z0-9_]+")


class RrdError(RackwatchError):
    """An RRD file cannot be read as asked; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class RrdSeries:
    """One data source's points, oldest first, unknown points left out."""

    ds: str
    ts_ms: I64
    value: F64
    resolutions_s: tuple[int, ...]
    """The archives' resolutions the points came from, finest first."""
    n_dropped: int = 0
    """Points beyond MAX_ABS_VALUE."""


@dataclass(frozen=True, slots=True)
class RrdFile:
    path: Path
    step_s: int
    last_update_s: int
    series: tuple[RrdSeries, ...]


def _rrdtool() -> Any:
    try:
        import rrdtool  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise RrdError(
            "reading RRD files needs the rrdtool library: pip install rrdtool "
            "(on Debian, apt install librrd-dev first), or bash scripts/install --dev"
        ) from None
    return rrdtool


def read(
    path: Path,
    *,
    consolidation: str = "AVERAGE",
    since_s: int | None = None,
    ds: Sequence[str] = (),
) -> RrdFile:
    """Every point of `path`'s data sources (`ds`: these only) at the finest resolution kept
    for each period, from `since_s` (epoch seconds) on. RrdError says what is wrong."""
    rrdtool = _rrdtool()
    if consolidation not in CONSOLIDATIONS:
        raise RrdError(f"consolidation must be one of {', '.join(CONSOLIDATIONS)}")
    if not path.is_file():
        raise RrdError(f"{path}: no such file")
    try:
        info = rrdtool.info(str(path))
    except rrdtool.OperationalError as exc:
        raise RrdError(f"{path} is not a readable RRD file ({exc})") from None
    step_s = int(info["step"])
    last_s = int(info["last_update"])
    names = _ds_names(info)
    wanted = list(ds) if ds else names
    unknown = [d for d in wanted if d not in names]
    if unknown:
        raise RrdError(f"{path} has no data source {', '.join(unknown)}: it has {', '.join(names)}")
    archives = sorted(
        {
            step_s * int(info[f"rra[{i}].pdp_per_row"]): int(info[f"rra[{i}].rows"])
            for i in _rra_indexes(info)
            if info[f"rra[{i}].cf"] == consolidation
        }.items()
    )
    if not archives:
        raise RrdError(f"{path} keeps no {consolidation} archive")
    total = sum(rows for _, rows in archives) * len(wanted)
    if total > MAX_POINTS:
        raise RrdError(f"{path} holds {total:,} points, more than the {MAX_POINTS:,} allowed")
    picked: list[tuple[I64, F64, tuple[str, ...]]] = []  # finest archive first
    frontier = math.inf  # where the finer archives' known points begin (an interval's start)
    for resolution_s, rows in archives:
        end = last_s - last_s % resolution_s
        start = end - rows * resolution_s
        if since_s is not None:
            start = max(start, since_s - since_s % resolution_s - resolution_s)
        if start >= min(end, frontier):
            continue
        fetch_end = int(min(end, frontier + resolution_s))
        try:
            (first, _last, got_step), got_names, points = rrdtool.fetch(
                str(path),
                consolidation,
                "-r",
                str(resolution_s),
                "-s",
                str(start),
                "-e",
                str(fetch_end),
            )
        except rrdtool.OperationalError as exc:
            raise RrdError(f"{path}: rrdtool fetch failed ({exc})") from None
        values = np.array(points, dtype=np.float64).reshape(len(points), len(got_names))
        # row i is the interval that ends at first + (i + 1) * step
        ts = (first + got_step * (1 + np.arange(len(points), dtype=np.int64))).astype(np.int64)
        keep = (ts <= fetch_end) & (ts - got_step < frontier)
        if since_s is not None:
            keep &= ts >= since_s
        picked.append((ts[keep], values[keep], tuple(got_names)))
        known = np.isfinite(values[keep]).any(axis=1)
        if known.any():
            frontier = min(frontier, float(ts[keep][known].min() - got_step))
    # A coarser point may end inside the finer archive's first intervals: it stays (it covers
    # more) and the finer points up to it go, so no instant appears twice and none is missed.
    floor = -math.inf
    columns: dict[str, list[tuple[I64, F64]]] = {d: [] for d in wanted}
    for ts, values, got_names in reversed(picked):
        after = ts > floor
        for j, name in enumerate(got_names):
            if name in columns:
                columns[name].append((ts[after], values[after, j]))
        known = np.isfinite(values[after]).any(axis=1)
        if known.any():
            floor = max(floor, float(ts[after][known].max()))
    resolutions = tuple(r for r, _ in archives)
    return RrdFile(path, step_s, last_s, tuple(_series(d, columns[d], resolutions) for d in wanted))


def _series(ds: str, parts: list[tuple[I64, F64]], resolutions: tuple[int, ...]) -> RrdSeries:
    ts = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    value = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    order = np.argsort(ts, kind="stable")
    ts, value = ts[order], value[order]
    finite = np.isfinite(value)
    sane = finite & (np.abs(value) <= MAX_ABS_VALUE)
    return RrdSeries(
        ds,
        (ts[sane] * 1000).astype(np.int64),
        value[sane],
        resolutions,
        int((finite & ~sane).sum()),
    )


def _ds_names(info: Mapping[str, Any]) -> list[str]:
    """The data sources in the file's order (`ds[NAME].index`)."""
    found = {
        key[3 : key.index("]")]: int(value)
        for key, value in info.items()
        if key.startswith("ds[") and key.endswith("].index")
    }
    return sorted(found, key=found.__getitem__)


def _rra_indexes(info: Mapping[str, Any]) -> list[int]:
    return sorted(
        {int(key[4 : key.index("]")]) for key in info if key.startswith("rra[") and "].cf" in key}
    )


def metric_names(path: Path, ds: Sequence[str], metric: str | None = None) -> dict[str, str]:
    """The metric each data source becomes (see the module text); `metric` names the one
    data source of a file explicitly."""
    if metric is not None:
        if len(ds) != 1:
            raise RrdError(
                f"{path} has {len(ds)} data sources ({', '.join(ds)}): --metric names one; "
                "pick it with --ds"
            )
        return {ds[0]: metric}
    stem = path.name.removesuffix(".rrd")
    known = KNOWN_FILES.get(stem, {})
    base = _NOT_IN_METRIC.sub("_", stem.lower()).strip("_") or "rrd"
    out = {}
    for name in ds:
        if name in known:
            out[name] = known[name]
        elif len(ds) == 1 or name in _PLAIN_DS:
            out[name] = base
        else:
            out[name] = f"{base}_{_NOT_IN_METRIC.sub('_', name.lower()).strip('_')}"
    return out
