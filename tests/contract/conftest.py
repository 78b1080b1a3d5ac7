"""The Store contract: every implementation is opened through OPENERS and must pass the suite.

A new backend adds one entry to OPENERS. DuckDB stores are opened with small flush
thresholds so that the suite crosses flushes, aligned runs and log rotations; each PostgreSQL
test gets its own schema on the server at PG_URL (RACKWATCH_TEST_PG_URL), dropped after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from store_data import T0

from rackwatch.model import SeriesRegistry
from rackwatch.store.base import Store
from rackwatch.store.duckdb import DuckDBStore

PG_URL = os.environ.get("RACKWATCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


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
    "postgresql": lambda path, registry, clock, **kw: open_pg(path, registry, clock, **kw),
}

MARKS = {"postgresql": [pytest.mark.integration]}


def pg_schema_of(path: Path) -> str:
    """A schema per test (its tmp_path), the same on every open of that test."""
    return "contract_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


def open_pg(path: Path, registry: SeriesRegistry, clock: Clock, **kw: Any) -> Store:
    pytest.importorskip("psycopg")  # the `sql` extra
    from rackwatch.store.postgres import PostgresStore

    kw.pop("wal_sync_seconds", None)  # no head in memory and no log of it
    return PostgresStore(PG_URL, registry, schema=pg_schema_of(path), clock=clock, **kw)


def drop_pg_schema(path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {pg_schema_of(path)} CASCADE")


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


@pytest.fixture(params=[pytest.param(k, marks=MARKS.get(k, [])) for k in sorted(OPENERS)])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    h = Harness(request.param, tmp_path / "data")
    yield h
    for store in h.opened:
        with contextlib.suppress(Exception):  # a test may have closed or crashed it on purpose
            store.close()
    if h.kind == "postgresql":
        drop_pg_schema(h.path)
