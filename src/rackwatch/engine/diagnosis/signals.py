"""What the diagnosis knows of every series between batches: its newest value, a slow
reference of its usual level, the largest value it ever reported, and since when it has held
the same value (a flat run). Arrays indexed by series id, updated a batch at a time with a few
NumPy passes; plus an index of each entity's series by metric, and of each device's fans.

The reference is an exponentially weighted mean of the newest value of each batch with a
`reference_halflife_s` (15 min by default): at an anomaly's start it still holds the level
from before, so "how far did the chassis temperature move since" is `latest - reference`.

>>> from rackwatch.model import Batch, SeriesRegistry
>>> reg = SeriesRegistry()
>>> a = reg.intern("c01/r01/s01", "airflow_cfm")
>>> book = SignalBook(reg)
>>> book.update(Batch.of([0, 5000, 10000], [a, a, a], [40.0, 0.0, 0.0]))
>>> float(book.latest[a]), int(book.flat_since[a]), float(book.peak[a])
(0.0, 5000, 40.0)
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.model.entity import parent

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NO_TS = -(2**62)
RULE_METRICS = ("fan_rpm", "disk_ok", "pdu_capacity_watts", "airflow_cfm")
"""Series read directly by the diagnosis rules (findings.py); `rule_code` is 1 + the index."""


class SignalBook:
    def __init__(self, registry: SeriesRegistry, *, reference_halflife_s: float = 900.0) -> None:
        self.registry = registry
        self.tau_ms = reference_halflife_s * 1000.0 / math.log(2.0)
        self.latest: F64 = np.zeros(0)
        self.latest_ts: I64 = np.zeros(0, dtype=np.int64)
        self.reference: F64 = np.zeros(0)
        self.peak: F64 = np.zeros(0)
        self.flat_since: I64 = np.zeros(0, dtype=np.int64)
        self.rule_code: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self.partner: I64 = np.zeros(0, dtype=np.int64)
        """For a fan's rpm: its level's series (-1: none yet)."""
        self._by_entity: dict[str, dict[str, int]] = {}
        self._fans: dict[str, list[str]] = {}
        self._known = 0

    # --- index --------------------------------------------------------------------------------

    def _follow(self) -> None:
        n = len(self.registry)
        if n == self._known:
            return
        if n > len(self.latest):
            # Doubling, only when the arrays are full: growing them on every new series
            # doubled them per device that announced itself (gigabytes after a few dozen).
            extra = max(n, 2 * len(self.latest)) - len(self.latest)
            self.rule_code = np.concatenate([self.rule_code, np.zeros(extra, dtype=np.int8)])
            self.partner = np.concatenate([self.partner, np.full(extra, -1, dtype=np.int64)])
            self.latest = np.concatenate([self.latest, np.full(extra, np.nan)])
            self.latest_ts = np.concatenate([self.latest_ts, np.full(extra, NO_TS)])
            self.reference = np.concatenate([self.reference, np.full(extra, np.nan)])
            self.peak = np.concatenate([self.peak, np.full(extra, -np.inf)])
            self.flat_since = np.concatenate([self.flat_since, np.full(extra, NO_TS)])
        for sid in range(self._known, n):
            key = self.registry.key(sid)
            metrics = self._by_entity.setdefault(key.entity, {})
            metrics[key.metric] = sid
            if key.metric in RULE_METRICS:
                self.rule_code[sid] = 1 + RULE_METRICS.index(key.metric)
            if key.metric == "fan_rpm":
                device = parent(key.entity)
                if device is not None:
                    self._fans.setdefault(device, []).append(key.entity)
            rpm, level = metrics.get("fan_rpm"), metrics.get("fan_level")
            if rpm is not None and level is not None:
                self.partner[rpm] = level
        self._known = n

    def series(self, entity: str, metric: str) -> int | None:
        return self._by_entity.get(entity, {}).get(metric)

    def metrics_of(self, entity: str) -> dict[str, int]:
        return self._by_entity.get(entity, {})

    def fans_of(self, device: str) -> list[str]:
        return self._fans.get(device, [])

    def value(self, entity: str, metric: str) -> float:
        """The newest value (NaN: never seen, or NULL)."""
        sid = self.series(entity, metric)
        return math.nan if sid is None else float(self.latest[sid])

    def moved(self, entity: str, metric: str, since: dict[int, float]) -> float:
        """How far `metric` of `entity` moved from its reference captured in `since` (NaN:
        unknown)."""
        sid = self.series(entity, metric)
        if sid is None or sid not in since:
            return math.nan
        return float(self.latest[sid]) - since[sid]

    def capture(self, entity: str) -> dict[int, float]:
        """The reference of every series of `entity` (and its fans), to measure moves from."""
        sids = list(self.metrics_of(entity).values())
        for fan in self.fans_of(entity):
            sids += list(self.metrics_of(fan).values())
        return {sid: float(self.reference[sid]) for sid in sids}

    # --- update -------------------------------------------------------------------------------

    def update(self, batch: Batch) -> None:
        self._follow()
        if not len(batch):
            return
        order = np.lexsort((batch.ts, batch.series))
        series, ts, value = batch.series[order], batch.ts[order], batch.value[order]
        finite = np.isfinite(value)
        last = np.ones(len(series), dtype=np.bool_)
        last[:-1] = series[1:] != series[:-1]
        first = np.ones(len(series), dtype=np.bool_)
        first[1:] = series[1:] != series[:-1]

        # flat runs: a row that differs from the one before (or from the stored newest) starts one
        before = np.empty_like(value)
        before[1:] = value[:-1]
        before[first] = self.latest[series[first]]
        changed = ~(value == before)  # NaN never equals: a NULL breaks a flat run
        starts = np.where(changed, ts, NO_TS)
        newest_start = np.maximum.reduceat(starts, np.flatnonzero(first))
        ids = series[last]
        self.flat_since[ids] = np.where(newest_start > NO_TS, newest_start, self.flat_since[ids])

        with np.errstate(invalid="ignore"):
            fin_peak = np.where(finite, value, -np.inf)
        np.maximum.at(self.peak, series, fin_peak)

        new_value, new_ts = value[last], ts[last]
        old_ref, old_ts = self.reference[ids], self.latest_ts[ids]
        dt = np.maximum(new_ts - old_ts, 0).astype(np.float64)
        weight = 1.0 - np.exp(-dt / self.tau_ms)
        known = np.isfinite(old_ref)
        usable = np.isfinite(new_value)
        ref = np.where(known, old_ref + weight * (new_value - old_ref), new_value)
        self.reference[ids] = np.where(usable, ref, old_ref)
        self.latest[ids] = new_value
        self.latest_ts[ids] = new_ts
