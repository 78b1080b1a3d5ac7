"""Events and the inventory in SQL: conversion to and from rows, the event filters.

Events are few next to samples (alerts, faults, commands), so they go row-wise; the entity
glob is applied in Python with the one entity matcher (rackwatch.model.entity) after a prefix
filter in SQL that keeps every entity the glob can match (`c01/**` keeps `c01` itself).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from rackwatch.errors import StoreError
from rackwatch.model import Event, Severity
from rackwatch.model.entity import ANY_DEPTH, compile_pattern
from rackwatch.store.base import EntityRecord


def _json(attributes: Any, what: str) -> str:
    try:
        return json.dumps(dict(attributes), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} attributes must be JSON-serialisable: {exc}") from exc


def events_table(events: Sequence[Event]) -> pa.Table:
    """Events as the columns of the `events` table (attributes as JSON text)."""
    return pa.table(
        {
            "ts": pa.array([int(e.ts) for e in events], pa.int64()),
            "end_ts": pa.array([e.end_ts for e in events], pa.int64()),
            "kind": pa.array([str(e.kind) for e in events], pa.string()),
            "entity": pa.array([e.entity for e in events], pa.string()),
            "severity": pa.array([int(e.severity) for e in events], pa.int8()),
            "attributes": pa.array([_json(e.attributes, "event") for e in events], pa.string()),
        }
    )


EVENT_COLUMNS = ("ts", "end_ts", "kind", "entity", "severity", "attributes")


def insert_new_events_sql(new: str) -> str:
    """INSERT of the rows of table `new` into `events`, each distinct row once and none
    already there (the same in every column): writing an event again changes nothing.
    Parameters: the rows' lowest and highest `ts` (so the check reads only that range)."""
    cols = ", ".join(EVENT_COLUMNS)
    return (
        f"INSERT INTO events ({cols}) SELECT DISTINCT {cols} FROM {new} n "
        "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.ts BETWEEN ? AND ? "
        "AND e.ts = n.ts AND e.kind = n.kind AND e.entity = n.entity "
        "AND e.severity = n.severity AND e.attributes = n.attributes "
        "AND e.end_ts IS NOT DISTINCT FROM n.end_ts)"
    )


def read_events(
    cur: duckdb.DuckDBPyConnection,
    start_ms: int,
    end_ms: int,
    entity: str = "**",
    kinds: Sequence[str] | None = None,
    newest: int | None = None,
) -> list[Event]:
    """Events overlapping [start_ms, end_ms), entity matching the glob, kind in `kinds`, by
    ts; with `newest`, only that many, the newest first (read until found, not all of them).
    """
    if end_ms < start_ms:
        raise StoreError(f"event range ends before it starts: {start_ms} > {end_ms}")
    if kinds is not None and not kinds:
        return []
    sql = "SELECT ts, end_ts, kind, entity, severity, attributes FROM events "
    sql += "WHERE ts < ? AND coalesce(end_ts, ts + 1) > ?"
    params: list[Any] = [end_ms, start_ms]
    if kinds is not None:
        sql += " AND kind IN (SELECT unnest(?::VARCHAR[]))"
        params.append([str(k) for k in kinds])
    prefix = literal_prefix(entity)
    if prefix:
        sql += " AND starts_with(entity, ?)"
        params.append(prefix)
    order = (
        " ORDER BY ts DESC, kind, entity" if newest is not None else " ORDER BY ts, kind, entity"
    )
    result = cur.execute(sql + order, params)
    pattern = compile_pattern(entity)
    found: list[Event] = []
    while newest is None or len(found) < newest:
        rows = result.fetchmany(_EVENT_BATCH)
        if not rows:
            break
        found += [
            Event(
                ts=int(ts),
                kind=str(kind),
                entity=str(ent),
                severity=Severity(int(sev)),
                attributes=json.loads(attrs),
                end_ts=None if end_ts is None else int(end_ts),
            )
            for ts, end_ts, kind, ent, sev, attrs in rows
            if pattern.match(str(ent))
        ]
    if newest is not None:
        result.fetchall()  # DuckDB refuses other work on a connection with an unread result
        del found[newest:]
    return found


_EVENT_BATCH = 1024


def inventory_rows(entities: Sequence[EntityRecord]) -> list[tuple[str, str, str]]:
    return [(e.path, e.kind, _json(e.attributes, "entity")) for e in entities]


def read_inventory(
    cur: duckdb.DuckDBPyConnection, paths: Sequence[str] | None = None
) -> list[EntityRecord]:
    """Every stored entity, or those of `paths`."""
    if paths is None:
        rows = cur.execute("SELECT path, kind, attributes FROM inventory ORDER BY path")
    else:
        rows = cur.execute(
            "SELECT path, kind, attributes FROM inventory WHERE path IN (SELECT unnest(?)) "
            "ORDER BY path",
            [list(paths)],
        )
    return [EntityRecord(str(p), str(k), json.loads(a)) for p, k, a in rows.fetchall()]


def literal_prefix(pattern: str) -> str:
    """A prefix of every entity the glob matches (for a cheap SQL prefilter): the part before
    its first wildcard, less the slash before a `**` (which may take no segment, so
    `c01/r01/s01/**` matches `c01/r01/s01`, which does not start with `c01/r01/s01/`).

    >>> literal_prefix("c01/r0?/**"), literal_prefix("**"), literal_prefix("room/crac1")
    ('c01/r0', '', 'room/crac1')
    >>> literal_prefix("c01/r01/s01/**"), literal_prefix("c01/*/s01"), literal_prefix("c01/**/x")
    ('c01/r01/s01', 'c01/', 'c01')
    """
    cut = len(pattern)
    for ch in "*?[":
        i = pattern.find(ch)
        if i >= 0:
            cut = min(cut, i)
    prefix = pattern[:cut]
    if prefix.endswith("/") and pattern.startswith(ANY_DEPTH, cut):
        return prefix[:-1]
    return prefix
