"""Helpers for the twin tests: a faulted twin and its fault-free twin (same seed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

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


@pytest.fixture
def pair() -> PairFactory:
    def make(
        kind: str,
        entity: str,
        params: Mapping[str, Any] | None = None,
        *,
        preset: str = "small",
        start: int = 120,
        n_steps: int = 720,
        seed: int = 11,
    ) -> Pair:
        twin, base = Twin(preset, seed=seed), Twin(preset, seed=seed)
        twin.inject(kind, entity, params, start_ms=twin.start_ms + start * twin.step_ms)
        return Pair(twin, twin.run(n_steps), base.run(n_steps), start)

    return make
