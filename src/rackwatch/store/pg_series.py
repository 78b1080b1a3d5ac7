"""The PostgreSQL store's series ids, shared by every process that writes or reads the schema.

A process's SeriesRegistry gives ids in the order it met its series; partitioned store workers
and front ends meet them in different orders. So the `series` table is the authority: its ids
come from a sequence and a key gets one id whoever adds it first (`ON CONFLICT DO NOTHING` on
the unique (entity, metric)). `SeriesMap` maps the registry's ids (local) onto the table's
(global) and back; rows are stored and read with global ids and handed to callers with local
ones. Series another process added are read in on open, then at most every `REFRESH_S` when a
read wants them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from rackwatch.model import SeriesRegistry

I32 = npt.NDArray[np.int32]
REFRESH_S = 5.0


def _grown(table: I32, size: int) -> I32:
    if size <= len(table):
        return table
    out = np.full(max(size, 2 * len(table)), -1, np.int32)
    out[: len(table)] = table
    return out


class SeriesMap:
    def __init__(self, registry: SeriesRegistry, clock: Any = time.monotonic) -> None:
        self.registry = registry
        self._to_global: I32 = np.empty(0, np.int32)
        self._to_local: I32 = np.empty(0, np.int32)
        self._n_mapped = 0
        """Local ids 0..n-1 all have a global id."""
        self._last_gid = -1
        self._clock = clock
        self._loaded_at = -float("inf")

    @property
    def n_global(self) -> int:
        """Series the table held at the last load (or this process added)."""
        return int((self._to_local >= 0).sum())

    def load(self, con: psycopg.Connection[Any]) -> None:
        """Read in the series other processes added since the last load."""
        rows = con.execute(
            "SELECT id, entity, metric FROM series WHERE id > %s ORDER BY id", [self._last_gid]
        ).fetchall()
        for gid, entity, metric in rows:
            self._pair(self.registry.intern(entity, metric), int(gid))
        self._loaded_at = self._clock()
        self._n_mapped = self._first_unmapped()

    def refresh(self, con: psycopg.Connection[Any]) -> None:
        """`load`, at most every REFRESH_S (a reader's view of other processes' series)."""
        if self._clock() - self._loaded_at >= REFRESH_S:
            self.load(con)

    def persist(self, con: psycopg.Connection[Any]) -> None:
        """Give every local series without one a global id (the table's, or a new one)."""
        n = len(self.registry)
        if self._n_mapped >= n:
            return
        keys = self.registry.keys()
        todo = [i for i in range(self._n_mapped, n) if self._global(i) < 0]
        if todo:
            entities = [keys[i].entity for i in todo]
            metrics = [keys[i].metric for i in todo]
            with con.transaction():
                # One adder at a time: ids then become visible in the order they were given,
                # which `load` (id > the last seen) relies on.
                con.execute("SELECT pg_advisory_xact_lock(hashtext('rackwatch series'))")
                con.execute(
                    """INSERT INTO series (id, entity, metric)
                       SELECT nextval('series_id'), e, m
                         FROM unnest(%s::text[], %s::text[]) AS k(e, m)
                       ON CONFLICT (entity, metric) DO NOTHING""",
                    [entities, metrics],
                )
                rows = con.execute(
                    """SELECT s.id, s.entity, s.metric FROM series s
                       JOIN unnest(%s::text[], %s::text[]) AS k(e, m)
                         ON s.entity = k.e AND s.metric = k.m""",
                    [entities, metrics],
                ).fetchall()
            for gid, entity, metric in rows:
                self._pair(self.registry.intern(entity, metric), int(gid))
        self._n_mapped = self._first_unmapped()

    def to_global(self, local: I32) -> I32:
        """Global ids of local ones; -1 for a series not persisted yet (it has no rows)."""
        inside = (local >= 0) & (local < len(self._to_global))
        out = np.full(len(local), -1, np.int32)
        out[inside] = self._to_global[local[inside]]
        return out

    def to_local(self, gids: I32) -> I32:
        """Local ids of global ones; -1 for a series this process has not read in yet."""
        inside = (gids >= 0) & (gids < len(self._to_local))
        out = np.full(len(gids), -1, np.int32)
        out[inside] = self._to_local[gids[inside]]
        return out

    def _global(self, local: int) -> int:
        return int(self._to_global[local]) if local < len(self._to_global) else -1

    def _pair(self, local: int, gid: int) -> None:
        self._to_global = _grown(self._to_global, local + 1)
        self._to_local = _grown(self._to_local, gid + 1)
        self._to_global[local] = gid
        self._to_local[gid] = local
        self._last_gid = max(self._last_gid, gid)

    def _first_unmapped(self) -> int:
        n = len(self.registry)
        head = self._to_global[:n]
        missing = np.flatnonzero(head < 0)
        if len(missing):
            return int(missing[0])
        return min(n, len(head))
