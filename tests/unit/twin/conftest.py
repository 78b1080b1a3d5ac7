"""Fixtures for the twin tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from twin_support import Pair, PairFactory

from rackwatch.twin import Twin


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
