"""`rackwatch import rrd`: history from RRD files written into the store as one entity's series
(seed 003's hourly move of each machine's load averages from its RRD files).

Each file is read whole by `sources.rrd.read` (the finest resolution kept for each period) and
written as raw samples of `entity`; the store keeps one value per instant, so importing a file
again, or a file that overlaps what is stored, adds only what is new (the rest is counted as
already stored). A store that already holds recent data drops samples older than its raw
retention (7 days by default): import older history into a fresh data directory, or raise
`[store] raw_retention_days` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.model.entity import validate
from rackwatch.sources import rrd
from rackwatch.store.base import Store

_METRIC = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class Imported:
    """What one data source of one file gave."""

    path: Path
    ds: str
    metric: str
    n_points: int
    first_ms: int | None
    last_ms: int | None
    resolutions_s: tuple[int, ...]


def check_target(entity: str, metric: str | None) -> None:
    """ValueError naming what is wrong with the entity or the metric asked for."""
    validate(entity)
    if metric is not None and not _METRIC.match(metric):
        raise ValueError(
            f"bad metric name {metric!r}: lower-case letters, digits and _, not starting "
            "with a digit"
        )


@dataclass(frozen=True, slots=True)
class ImportSummary:
    imported: tuple[Imported, ...]
    n_written: int
    """Points the store took ..."""
    n_skipped: int
    """... and those it held already, or that were older than it keeps."""


def import_rrd(
    store: Store,
    registry: SeriesRegistry,
    files: Sequence[Path],
    entity: str,
    *,
    metric: str | None = None,
    ds: Sequence[str] = (),
    since_s: int | None = None,
    consolidation: str = "AVERAGE",
    on_file: Callable[[Path], None] | None = None,
) -> ImportSummary:
    """Read every file, then write them all (a bad file: rrd.RrdError, and nothing written)."""
    check_target(entity, metric)
    read = [(f, rrd.read(f, consolidation=consolidation, since_s=since_s, ds=ds)) for f in files]
    names = {f: rrd.metric_names(f, [s.ds for s in r.series], metric) for f, r in read}
    out = []
    before = store.usage()
    for path, file in read:
        for series in file.series:
            name = names[path][series.ds]
            sid = registry.intern(entity, name)
            store.write(
                Batch.of(series.ts_ms, np.full(len(series.ts_ms), sid, np.int32), series.value)
            )
            out.append(
                Imported(
                    path,
                    series.ds,
                    name,
                    len(series.ts_ms),
                    int(series.ts_ms[0]) if len(series.ts_ms) else None,
                    int(series.ts_ms[-1]) if len(series.ts_ms) else None,
                    series.resolutions_s,
                )
            )
        if on_file is not None:
            on_file(path)
    store.flush()  # the store drops repeated and expired instants as it consolidates
    after = store.usage()
    skipped = after.n_duplicates + after.n_expired - before.n_duplicates - before.n_expired
    total = sum(i.n_points for i in out)
    return ImportSummary(tuple(out), total - skipped, skipped)
