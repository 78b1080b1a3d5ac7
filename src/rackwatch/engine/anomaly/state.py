"""Per-series (or per-device) state as one array per field, grown as new ids appear.

>>> table = StateTable({"n": (np.int64, 0), "mean": (np.float64, np.nan)})
>>> rows = table.gather(np.array([3]))
>>> rows["n"] += 2
>>> table.scatter(np.array([3]), rows)
>>> len(table), table["n"].tolist()
(4, [0, 0, 0, 2])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Field = tuple[type[np.generic], Any]
"""A field's dtype and the value a new id starts with."""


class StateTable:
    """Arrays indexed by id; `gather` copies some ids' rows out, `scatter` writes them back.

    Growth doubles the capacity, so ids interned one by one cost amortised O(1) each. Memory:
    the sum of the fields' item sizes per id.
    """

    def __init__(self, fields: Mapping[str, Field], capacity: int = 0) -> None:
        self._fields = dict(fields)
        self._size = 0
        self._arrays: dict[str, npt.NDArray[Any]] = {
            name: np.full(capacity, fill, dtype=dtype) for name, (dtype, fill) in fields.items()
        }

    def __len__(self) -> int:
        return self._size

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._fields)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._arrays[name][: self._size]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def ensure(self, n_ids: int) -> None:
        """Make ids 0..n_ids-1 addressable (new ones start at their fields' fill values)."""
        if n_ids <= self._size:
            return
        capacity = len(next(iter(self._arrays.values()))) if self._arrays else 0
        if n_ids > capacity:
            new_capacity = max(n_ids, 2 * capacity, 16)
            for name, (dtype, fill) in self._fields.items():
                grown = np.full(new_capacity, fill, dtype=dtype)
                grown[:capacity] = self._arrays[name]
                self._arrays[name] = grown
        self._size = n_ids

    def gather(self, ids: npt.NDArray[np.integer[Any]]) -> dict[str, npt.NDArray[Any]]:
        if len(ids):
            self.ensure(int(ids.max()) + 1)
        return {name: array[ids] for name, array in self._arrays.items()}

    def scatter(
        self, ids: npt.NDArray[np.integer[Any]], rows: Mapping[str, npt.NDArray[Any]]
    ) -> None:
        for name, array in self._arrays.items():
            array[ids] = rows[name]
