"""Events and the inventory in PostgreSQL: the filters of records.py in PostgreSQL's dialect.

The entity glob is applied in Python with the one entity matcher after a prefix filter in
SQL (records.literal_prefix); `newest` reads through a server-side cursor until it has found
enough, so a glob that keeps one event in a thousand does not fetch the whole range.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
import pyarrow as pa

from rackwatch.errors import StoreError
from rackwatch.model import Event, Severity
from rackwatch.model.entity import compile_pattern
from rackwatch.store.base import EntityRecord
from rackwatch.store.records import insert_new_events_sql, literal_prefix

_EVENT_BATCH = 1024
_COLUMNS = ("ts", "end_ts", "kind", "entity", "severity", "attributes")


def insert_events(con: psycopg.Connection[Any], table: pa.Table) -> None:
    """Rows of `records.events_table` into `events`, in one transaction: by COPY into a
    temporary table, then those not already stored (an event written again, as a bus message
    delivered again, changes nothing)."""
    columns = [table.column(name).to_pylist() for name in _COLUMNS]
    ts = columns[0]
    with con.transaction(), con.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS new_events (LIKE events) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY new_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        cur.execute(insert_new_events_sql("new_events").replace("?", "%s"), [min(ts), max(ts)])


def read_events(
    con: psycopg.Connection[Any],
    start_ms: int,
    end_ms: int,
    entity: str = "**",
    kinds: Sequence[str] | None = None,
    newest: int | None = None,
) -> list[Event]:
    """Events overlapping [start_ms, end_ms), entity matching the glob, kind in `kinds`, by
    ts; with `newest`, only that many, the newest first."""
    if end_ms < start_ms:
        raise StoreError(f"event range ends before it starts: {start_ms} > {end_ms}")
    if kinds is not None and not kinds:
        return []
    if newest is not None and newest < 0:
        raise StoreError(f"newest must be a count >= 0, got {newest}")
    sql = f"SELECT {', '.join(_COLUMNS)} FROM events "
    sql += "WHERE ts < %s AND coalesce(end_ts, ts + 1) > %s"
    params: list[Any] = [int(end_ms), int(start_ms)]
    if kinds is not None:
        sql += " AND kind = ANY(%s)"
        params.append([str(k) for k in kinds])
    prefix = literal_prefix(entity)
    if prefix:
        sql += " AND starts_with(entity, %s)"
        params.append(prefix)
    sql += " ORDER BY ts DESC, kind, entity" if newest is not None else " ORDER BY ts, kind, entity"
    pattern = compile_pattern(entity)
    found: list[Event] = []
    with con.transaction(), con.cursor(name="rackwatch_events") as cur:
        cur.execute(sql, params)
        while newest is None or len(found) < newest:
            rows = cur.fetchmany(_EVENT_BATCH)
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
        del found[newest:]
    return found


def read_inventory(
    con: psycopg.Connection[Any], paths: Sequence[str] | None = None, *, lock: bool = False
) -> list[EntityRecord]:
    """Every stored entity, or those of `paths` (`lock`: FOR UPDATE, inside a transaction)."""
    sql = "SELECT path, kind, attributes FROM inventory"
    params: list[Any] = []
    if paths is not None:
        sql += " WHERE path = ANY(%s)"
        params.append(list(paths))
    sql += " ORDER BY path" + (" FOR UPDATE" if lock else "")
    rows = con.execute(sql, params).fetchall()
    return [EntityRecord(str(p), str(k), json.loads(a)) for p, k, a in rows]
