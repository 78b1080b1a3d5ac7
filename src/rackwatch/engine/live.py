"""The newest value of every series: one rule (`keep_newest`) and one table (`LiveState`).

`keep_newest` is the only place that decides which sample of a series is the newest; the
live state, the fan controller's view and the alert rules' carried values all use it.

The live state is kept by one feed (`feed`: the pipeline's, or the API's when it runs alone)
and tells its listeners after each batch, so the WebSocket fan-out reads the same table the
REST API and the terminal panel read, already holding the batch it is sending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from rackwatch.bus import Bus, subjects
from rackwatch.engine.meter import RateMeter
from rackwatch.model import Batch

log = logging.getLogger(__name__)

Listener = Callable[[Batch], None]


def keep_newest(
    table_ts: npt.NDArray[np.int64],
    table_value: npt.NDArray[np.float64],
    slot: npt.NDArray[np.integer],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
) -> None:
    """Fold rows (any order) into per-slot (ts, value) tables, in place: a row replaces its
    slot's entry when it is not older; among rows with equal ts the later one wins.

    >>> t, v = np.array([5, -1]), np.array([1.0, np.nan])
    >>> rows = np.array([0, 1, 1, 0]), np.array([4, 7, 7, 5]), np.array([9.0, 2.0, 3.0, 8.0])
    >>> keep_newest(t, v, *rows)
    >>> t.tolist(), v.tolist()
    ([5, 7], [8.0, 3.0])
    """
    if len(slot) == 0:
        return
    # A stable sort by ts, then a fancy-index assignment (last write wins) keeps the newest.
    order = np.argsort(ts, kind="stable")
    slot, ts = slot[order], ts[order]
    newer = ts >= table_ts[slot]
    table_ts[slot[newer]] = ts[newer]
    table_value[slot[newer]] = value[order][newer]


class LiveState:
    """The latest value and its timestamp for every series, in two NumPy arrays indexed by
    series id (no per-sample Python object); `meter` counts the samples received."""

    def __init__(self, capacity: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.ts = np.full(capacity, -1, dtype=np.int64)
        self.value = np.full(capacity, np.nan, dtype=np.float64)
        self.meter = RateMeter(clock=clock)
        self._listeners: list[Listener] = []

    @property
    def n_samples(self) -> int:
        return self.meter.total

    def update(self, batch: Batch) -> None:
        """Keep, per series, the sample with the greatest ts; then tell the listeners."""
        if len(batch) == 0:
            return
        self._grow(int(batch.series.max()) + 1)
        keep_newest(self.ts, self.value, batch.series, batch.ts, batch.value)
        self.meter.add(len(batch))
        for listener in self._listeners:
            try:
                listener(batch)
            except Exception:  # one failing reader must not stop the table or the others
                log.exception("a live-state listener failed on a batch of %d samples", len(batch))

    def listen(self, listener: Listener) -> None:
        """Call `listener(batch)` after each batch is folded in."""
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        self._listeners.remove(listener)

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


async def feed(bus: Bus, live: LiveState, *, max_pending: int = 10_000) -> None:
    """Fold every telemetry Batch of the bus into `live` until the bus closes."""
    async with bus.subscribe(f"{subjects.TELEMETRY}.>", max_pending=max_pending) as telemetry:
        async for _subject, batch in telemetry:
            live.update(batch)
