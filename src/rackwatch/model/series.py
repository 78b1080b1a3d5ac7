"""Series interning: `(entity, metric)` is turned into a small integer id once, and Batches carry
only ids. One registry is shared by the sources and the store of a process; the store persists
it so that ids stay stable across restarts.

>>> reg = SeriesRegistry()
>>> reg.intern("c01/r01/s01", "power_watts"), reg.intern("c01/r01/s01", "power_watts")
(0, 0)
>>> reg.key(0)
SeriesKey(entity='c01/r01/s01', metric='power_watts')
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt


class SeriesKey(NamedTuple):
    entity: str
    metric: str


class SeriesRegistry:
    """Thread-safe interning of series keys into dense ids 0..n-1."""

    def __init__(self, keys: Iterable[SeriesKey] = ()) -> None:
        self._ids: dict[SeriesKey, int] = {}
        self._keys: list[SeriesKey] = []
        self._lock = threading.Lock()
        for key in keys:
            self.intern(*key)

    def __len__(self) -> int:
        return len(self._keys)

    def intern(self, entity: str, metric: str) -> int:
        key = SeriesKey(entity, metric)
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(key)
            if found is None:
                found = len(self._keys)
                self._ids[key] = found
                self._keys.append(key)
            return found

    def intern_many(self, keys: Iterable[tuple[str, str]]) -> npt.NDArray[np.int32]:
        return np.fromiter((self.intern(e, m) for e, m in keys), dtype=np.int32)

    def get(self, entity: str, metric: str) -> int | None:
        return self._ids.get(SeriesKey(entity, metric))

    def key(self, series_id: int) -> SeriesKey:
        return self._keys[series_id]

    def keys(self) -> list[SeriesKey]:
        return list(self._keys)
