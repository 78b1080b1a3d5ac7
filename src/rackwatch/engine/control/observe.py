"""Folding telemetry Batches into the controller's `Observation`, vectorised by series id.

The controller needs four metrics: CPU and inlet temperature per server, rpm and level per fan.
A lookup table from series id to (metric, index) is built once from the shared registry, so a
Batch is absorbed with a few fancy-indexing passes, whatever its size. A NULL reading (NaN)
is not a sample: a CPU probe that answers nothing counts as lost telemetry.

>>> from rackwatch.engine.control.layout import FanLayout
>>> from rackwatch.model import Batch, SeriesRegistry
>>> layout = FanLayout(("s1",), ("s1/fan1",), np.array([0]))
>>> registry = SeriesRegistry()
>>> cpu = registry.intern("s1", "cpu_temperature_celsius")
>>> view = TelemetryView(layout, registry)
>>> view.update(Batch.of([5000, 10000], [cpu, cpu], [60.0, np.nan]))
>>> obs = view.observation()
>>> obs.now_ms, obs.cpu_c.tolist(), obs.cpu_ms.tolist()
(10000, [60.0], [5000])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.layout import FanLayout
from rackwatch.engine.control.state import NEVER, Observation
from rackwatch.engine.live import keep_newest
from rackwatch.model.records import Batch
from rackwatch.model.series import SeriesRegistry

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CPU = "cpu_temperature_celsius"
INLET = "inlet_temperature_celsius"
FAN_RPM = "fan_rpm"
FAN_LEVEL = "fan_level"
_SERVER_METRICS = (CPU, INLET)
_FAN_METRICS = (FAN_RPM, FAN_LEVEL)
_METRICS = _SERVER_METRICS + _FAN_METRICS


class TelemetryView:
    """The newest valid value and its timestamp of each metric the controller reads."""

    def __init__(self, layout: FanLayout, registry: SeriesRegistry) -> None:
        self.layout = layout
        self.registry = registry
        self.now_ms = NEVER
        sizes = dict.fromkeys(_SERVER_METRICS, layout.n_servers)
        sizes |= dict.fromkeys(_FAN_METRICS, layout.n_fans)
        self._value: dict[str, F64] = {m: np.full(n, np.nan) for m, n in sizes.items()}
        self._ts: dict[str, I64] = {m: np.full(n, NEVER, dtype=np.int64) for m, n in sizes.items()}
        self._metric = np.zeros(0, dtype=np.int64)
        self._index = np.zeros(0, dtype=np.int64)
        self._rebuild()

    def _rebuild(self) -> None:
        """Series id -> (metric number, server/fan index), -1 where the controller reads nothing."""
        size = len(self.registry)
        metric = np.full(size, -1, dtype=np.int64)
        index = np.full(size, -1, dtype=np.int64)
        for m, name in enumerate(_METRICS):
            paths = self.layout.server_paths if name in _SERVER_METRICS else self.layout.fan_paths
            for k, path in enumerate(paths):
                sid = self.registry.get(path, name)
                if sid is not None:
                    metric[sid], index[sid] = m, k
        self._metric, self._index = metric, index

    def grow(self, layout: FanLayout) -> None:
        """Follow `layout`, which extends this view's (new servers and fans: nothing seen)."""
        for name in _METRICS:
            size = layout.n_servers if name in _SERVER_METRICS else layout.n_fans
            grown_value = np.full(size, np.nan)
            grown_ts = np.full(size, NEVER, dtype=np.int64)
            have = len(self._value[name])
            grown_value[:have], grown_ts[:have] = self._value[name], self._ts[name]
            self._value[name], self._ts[name] = grown_value, grown_ts
        self.layout = layout
        self._rebuild()

    def update(self, batch: Batch) -> None:
        """Absorb a Batch (any order of rows); later timestamps win, NaN rows are skipped."""
        if len(batch) == 0:
            return
        if int(batch.series.max()) >= len(self._metric):
            self._rebuild()
        series = batch.series
        known = series < len(self._metric)
        metric = np.full(len(batch), -1, dtype=np.int64)
        metric[known] = self._metric[series[known]]
        read = metric >= 0
        if not read.any():
            return
        # the clock moves with the series the controller reads only (a NULL reading too): a
        # device it does not drive, with a clock far ahead, must not make its servers look silent
        self.now_ms = max(self.now_ms, int(batch.ts[read].max()))
        keep = read & ~np.isnan(batch.value)
        if not keep.any():
            return
        for m, name in enumerate(_METRICS):
            mine = np.flatnonzero(keep & (metric == m))
            if len(mine):
                index = self._index[series[mine]]
                keep_newest(
                    self._ts[name], self._value[name], index, batch.ts[mine], batch.value[mine]
                )

    def observation(self) -> Observation:
        """A snapshot (copies) at the newest instant seen."""
        return Observation(
            now_ms=self.now_ms,
            cpu_c=self._value[CPU].copy(),
            cpu_ms=self._ts[CPU].copy(),
            inlet_c=self._value[INLET].copy(),
            fan_rpm=self._value[FAN_RPM].copy(),
            fan_level=self._value[FAN_LEVEL].copy(),
            fan_level_ms=self._ts[FAN_LEVEL].copy(),
        )
