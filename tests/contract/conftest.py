"""The Store contract: every implementation is opened through OPENERS and must pass the suite.

A new backend adds one entry to OPENERS (PostgreSQL later). Stores are opened with small
flush thresholds so that the suite crosses flushes, aligned runs and log rotations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from store_data import T0

from rackwatch.model import SeriesRegistry
from rackwatch.store.base import Store
from rackwatch.store.duckdb import DuckDBStore


@dataclass
class Clock:
    now_ms: int = T0

    def __call__(self) -> int:
        return self.now_ms


Opener = Callable[..., Store]

OPENERS: dict[str, Opener] = {
    "duckdb": lambda path, registry, clock, **kw: DuckDBStore(
        path,
        registry,
        clock=clock,
        flush_rows=kw.pop("flush_rows", 8192),
        consolidate_rows=kw.pop("consolidate_rows", 1000),
        wal_sync_seconds=kw.pop("wal_sync_seconds", 0),
        **kw,
    ),
}


@dataclass
class Harness:
    kind: str
    path: Path
    clock: Clock = field(default_factory=Clock)
    opened: list[Store] = field(default_factory=list)

    def open(self, registry: SeriesRegistry | None = None, **options: Any) -> Store:
        store = OPENERS[self.kind](
            self.path, registry if registry is not None else SeriesRegistry(), self.clock, **options
        )
        self.opened.append(store)
        return store


@pytest.fixture(params=sorted(OPENERS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    h = Harness(request.param, tmp_path / "data")
    yield h
    for store in h.opened:
        with contextlib.suppress(Exception):  # a test may have closed or crashed it on purpose
            store.close()
