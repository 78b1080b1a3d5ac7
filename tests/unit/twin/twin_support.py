"""Shared by the twin tests: a faulted twin and its fault-free twin (same seed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rackwatch.twin import Twin, TwinFrame


@dataclass
class Pair:
    """The same room run twice from the same seed: with (`twin`, `frame`) and without a fault."""

    twin: Twin
    frame: TwinFrame
    base: TwinFrame
    start: int
    """Row where the fault starts."""

    def col(self, entity: str, metric: str) -> int:
        return self.twin.column(entity, metric)

    def cols(self, metric: str) -> slice:
        return self.twin.layout.blocks[metric]

    def diff(self, entity: str, metric: str) -> np.ndarray:
        j = self.col(entity, metric)
        return self.frame.values[:, j] - self.base.values[:, j]


PairFactory = Callable[..., Pair]
