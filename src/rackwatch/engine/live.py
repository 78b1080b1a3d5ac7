"""The live state table: the latest value and its timestamp for every series, kept in two NumPy
arrays indexed by series id (no per-sample Python object)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch


class LiveState:
    def __init__(self, capacity: int = 1024) -> None:
        self.ts = np.full(capacity, -1, dtype=np.int64)
        self.value = np.full(capacity, np.nan, dtype=np.float64)
        self.n_samples = 0

    def update(self, batch: Batch) -> None:
        """Keep, per series, the sample with the greatest ts (later rows win ties)."""
        if len(batch) == 0:
            return
        self._grow(int(batch.series.max()) + 1)
        # Sort by ts so that a fancy-index assignment (last write wins) keeps the newest sample.
        order = np.argsort(batch.ts, kind="stable")
        series, ts = batch.series[order], batch.ts[order]
        newer = ts >= self.ts[series]
        self.ts[series[newer]] = ts[newer]
        self.value[series[newer]] = batch.value[order][newer]
        self.n_samples += len(batch)

    def snapshot(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Copies of (ts, value); ts is -1 for a series never seen."""
        return self.ts.copy(), self.value.copy()

    def get(self, series_id: int) -> tuple[int, float] | None:
        if series_id >= len(self.ts) or self.ts[series_id] < 0:
            return None
        return int(self.ts[series_id]), float(self.value[series_id])

    def _grow(self, size: int) -> None:
        if size <= len(self.ts):
            return
        capacity = max(size, 2 * len(self.ts))
        extra = capacity - len(self.ts)
        self.ts = np.concatenate([self.ts, np.full(extra, -1, dtype=np.int64)])
        self.value = np.concatenate([self.value, np.full(extra, np.nan)])
