"""`rackwatch sql sync`: the inventory (PDUs, outlets, machines) and each machine's power and
load history mirrored into any database SQLAlchemy speaks (PostgreSQL, MariaDB/MySQL,
SQLite…), in seed 003's (PowerMon's) tables, so that BI tools and PowerMon's users query it.

Tables (created when missing; names in lower case for every dialect):

- `pdu` (id, name = the entity path, host, port, snmp_version, profile, n_outlets,
  capacity_watts, present, updated_at); the SNMP community is a secret and is not copied;
- `machine` (id, name = the entity path, kind, rack, slot, present, attributes as JSON,
  updated_at);
- `outlet` (id, pdu_id, number, name, machine_id, present): which machine is plugged where;
- `power_cons` (machine_id, date, value): the machine's `power_watts`;
- `cpu_charge` (machine_id, date, avg1mn, avg5mn, avg15mn): its `load_average_1m/5m/15m`.

The inventory rows are matched by name: new ones are added, changed ones updated, and ones no
longer in the inventory kept with `present` false (their history stays). History is copied
incrementally: each machine from just after its newest row in the table (or `since` for a
machine new to it) to the newest whole bucket of the chosen tier (`1m` by default: the minute's
average; `1h`; or `raw` samples), so a sync run every hour copies the last hour and never a
row twice, and a bucket still filling is left for the next run. Rows go in batches of
`BATCH_ROWS`; the store is read in windows that bound memory.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from rackwatch.readout.export import RemoteSource
from rackwatch.readout.fetch import OptionError, ReadoutError
from rackwatch.store.base import EntityRecord, Query, QueryResult, Store, Tier

POWER = "power_watts"
LOADS = ("load_average_1m", "load_average_5m", "load_average_15m")
MACHINE_KINDS = frozenset({"server", "host", "machine"})
TIERS: dict[str, int] = {"raw": 0, "1m": 60_000, "1h": 3_600_000}
BATCH_ROWS = 10_000
WINDOW_ROWS = 500_000
"""Rows one store read may return (machines x metrics x buckets)."""
RAW_INTERVAL_MS = 5_000

metadata = MetaData()
pdu_table = Table(
    "pdu",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("host", String(255)),
    Column("port", Integer),
    Column("snmp_version", String(8)),
    Column("profile", String(255)),
    Column("n_outlets", Integer),
    Column("capacity_watts", Float),
    Column("present", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
machine_table = Table(
    "machine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("rack", String(255)),
    Column("slot", Integer),
    Column("present", Boolean, nullable=False),
    Column("attributes", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
outlet_table = Table(
    "outlet",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pdu_id", Integer, ForeignKey("pdu.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("name", String(255)),
    Column("machine_id", Integer, ForeignKey("machine.id")),
    Column("present", Boolean, nullable=False),
    UniqueConstraint("pdu_id", "number"),
)
power_table = Table(
    "power_cons",
    metadata,
    Column("machine_id", Integer, ForeignKey("machine.id"), primary_key=True),
    Column("date", DateTime(timezone=True), primary_key=True),
    Column("value", Float),
)
load_table = Table(
    "cpu_charge",
    metadata,
    Column("machine_id", Integer, ForeignKey("machine.id"), primary_key=True),
    Column("date", DateTime(timezone=True), primary_key=True),
    Column("avg1mn", Float),
    Column("avg5mn", Float),
    Column("avg15mn", Float),
)


class Source(Protocol):
    """The store, or the REST API of the `rackwatch run` that holds it."""

    where: str

    def inventory(self) -> list[EntityRecord]: ...

    def query(self, q: Query) -> QueryResult:
        """`q` over the machines' power and load series (the query's selection is ignored)."""
        ...

    def newest_ms(self) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Counts:
    added: int = 0
    changed: int = 0
    gone: int = 0
    """No longer in the inventory (kept, `present` false)."""


@dataclass(frozen=True, slots=True)
class SyncSummary:
    url: str
    """The database, its password hidden."""
    pdus: Counts
    machines: Counts
    outlets: Counts
    power_rows: int
    load_rows: int
    to_ms: int | None
    """Rows were copied up to this instant (excluded); None: the store holds nothing."""


def database_url(text: str) -> URL:
    """The URL checked: a dialect SQLAlchemy knows and its driver installed."""
    try:
        url = make_url(text)
        url.get_dialect()
    except (ArgumentError, ValueError) as exc:
        raise OptionError(
            f"not a database URL: {exc} (e.g. postgresql+psycopg://user@host/db, "
            "mysql+pymysql://root@127.0.0.1/powermon, sqlite:///powermon.db)",
            option="--url",
        ) from None
    except NoSuchModuleError as exc:
        raise OptionError(f"no SQLAlchemy dialect for this URL: {exc}", option="--url") from None
    return url


def connect(url: URL) -> Engine:
    try:
        return create_engine(url)
    except ModuleNotFoundError as exc:
        raise OptionError(
            f"the database driver {exc.name!r} is not installed: pip install 'rackwatch[sql]' "
            "(psycopg for PostgreSQL, PyMySQL for MariaDB/MySQL)",
            option="--url",
        ) from None


def sync(
    engine: Engine,
    source: Source,
    *,
    tier: str = "1m",
    since_ms: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> SyncSummary:
    """Mirror the inventory, then copy the history (see the module text). `on_progress` gets
    (windows done, windows in all)."""
    if tier not in TIERS:
        raise OptionError(f"tier must be one of {', '.join(TIERS)}", option="--tier")
    shown = engine.url.render_as_string(hide_password=True)
    try:
        metadata.create_all(engine)
        records = source.inventory()
        newest = source.newest_ms()
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            pdus = _upsert(conn, pdu_table, _pdu_rows(records), now)
            machines = _upsert(conn, machine_table, _machine_rows(records), now)
            outlets = _sync_outlets(conn, records)
        power_rows = load_rows = 0
        end_ms = None
        if newest is not None:
            width = TIERS[tier]
            end_ms = newest + 1 if width == 0 else newest - newest % width
            power_rows, load_rows = _copy_history(
                engine, source, tier, since_ms, end_ms, now, on_progress
            )
    except SQLAlchemyError as exc:
        raise ReadoutError(f"{shown}: {type(exc).__name__}: {_first_line(exc)}") from None
    return SyncSummary(shown, pdus, machines, outlets, power_rows, load_rows, end_ms)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- inventory


def _pdu_rows(records: Iterable[EntityRecord]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in records:
        if r.kind != "pdu":
            continue
        a = r.attributes
        out[r.path] = {
            "host": _text(a.get("host")),
            "port": _int(a.get("port")),
            "snmp_version": _text(a.get("version", a.get("snmp_version"))),
            "profile": _text(a.get("profile")),
            "n_outlets": _int(a.get("outlets", a.get("n_outlets"))),
            "capacity_watts": _float(a.get("capacity_watts")),
        }
    return out


def _machine_rows(records: Iterable[EntityRecord]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in records:
        if r.kind not in MACHINE_KINDS:
            continue
        a = dict(r.attributes)
        out[r.path] = {
            "kind": r.kind,
            "rack": _text(a.get("rack")),
            "slot": _int(a.get("slot")),
            "attributes": json.dumps(a, sort_keys=True, default=str),
        }
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:255]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and abs(number) < 2**31 else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _upsert(
    conn: Any, table: Table, rows: Mapping[str, dict[str, Any]], now: dt.datetime
) -> Counts:
    """Rows matched by name: added, updated when a column differs, others marked gone."""
    existing = {row.name: row._asdict() for row in conn.execute(select(table)).fetchall()}
    added = changed = gone = 0
    for name, values in rows.items():
        values = {**values, "present": True}
        old = existing.get(name)
        if old is None:
            conn.execute(table.insert().values(name=name, updated_at=now, **values))
            added += 1
        elif any(old.get(k) != v for k, v in values.items()):
            conn.execute(
                table.update().where(table.c.name == name).values(updated_at=now, **values)
            )
            changed += 1
    for name, old in existing.items():
        if name not in rows and old["present"]:
            conn.execute(
                table.update().where(table.c.name == name).values(present=False, updated_at=now)
            )
            gone += 1
    return Counts(added, changed, gone)


def _sync_outlets(conn: Any, records: Sequence[EntityRecord]) -> Counts:
    """Outlets (`kind` outlet, under their PDU, with `number` and `machine`) by (pdu, number)."""
    pdu_ids = {r.name: r.id for r in conn.execute(select(pdu_table.c.id, pdu_table.c.name))}
    machine_ids = {
        r.name: r.id for r in conn.execute(select(machine_table.c.id, machine_table.c.name))
    }
    wanted: dict[tuple[int, int], dict[str, Any]] = {}
    for r in records:
        if r.kind != "outlet":
            continue
        pdu = str(r.attributes.get("pdu") or r.path.rsplit("/", 1)[0])
        number = _int(r.attributes.get("number"))
        if pdu not in pdu_ids or number is None:
            continue
        machine = r.attributes.get("machine")
        wanted[(pdu_ids[pdu], number)] = {
            "name": _text(r.attributes.get("name")),
            "machine_id": machine_ids.get(str(machine)) if machine else None,
            "present": True,
        }
    existing = {
        (row.pdu_id, row.number): row._asdict()
        for row in conn.execute(select(outlet_table)).fetchall()
    }
    added = changed = gone = 0
    for (pdu_id, number), values in wanted.items():
        old = existing.get((pdu_id, number))
        where = (outlet_table.c.pdu_id == pdu_id) & (outlet_table.c.number == number)
        if old is None:
            conn.execute(outlet_table.insert().values(pdu_id=pdu_id, number=number, **values))
            added += 1
        elif any(old.get(k) != v for k, v in values.items()):
            conn.execute(outlet_table.update().where(where).values(**values))
            changed += 1
    for key, old in existing.items():
        if key not in wanted and old["present"]:
            where = (outlet_table.c.pdu_id == key[0]) & (outlet_table.c.number == key[1])
            conn.execute(outlet_table.update().where(where).values(present=False))
            gone += 1
    return Counts(added, changed, gone)


# --------------------------------------------------------------------------- history


def _copy_history(
    engine: Engine,
    source: Source,
    tier: str,
    since_ms: int,
    end_ms: int,
    now: dt.datetime,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[int, int]:
    with engine.connect() as conn:
        ids = {r.name: r.id for r in conn.execute(select(machine_table.c.id, machine_table.c.name))}
        done_power = _newest(conn, power_table)
        done_load = _newest(conn, load_table)
    starts = [since_ms, *done_power.values(), *done_load.values()]
    start_ms = max(since_ms, min(starts)) if done_power or done_load else since_ms
    if start_ms >= end_ms:
        return 0, 0
    width = TIERS[tier] or RAW_INTERVAL_MS
    per_window = max(1, WINDOW_ROWS // max(1, len(ids) * (1 + len(LOADS))))
    window_ms = max(3_600_000, per_window * width)
    windows = [(lo, min(lo + window_ms, end_ms)) for lo in range(start_ms, end_ms, window_ms)]
    power_rows = load_rows = 0
    for n, (lo, hi) in enumerate(windows):
        result = source.query(Query(lo, hi, step_ms=TIERS[tier] or None, tier=_tier(tier)))
        with engine.begin() as conn:
            _add_missing_machines(conn, result, ids, now)
            power, loads = _rows(result, ids, done_power, done_load, since_ms)
            for table, rows in ((power_table, power), (load_table, loads)):
                for i in range(0, len(rows), BATCH_ROWS):
                    conn.execute(table.insert(), rows[i : i + BATCH_ROWS])
        power_rows += len(power)
        load_rows += len(loads)
        if on_progress is not None:
            on_progress(n + 1, len(windows))
    return power_rows, load_rows


def _tier(tier: str) -> str | None:
    return None if tier == "raw" else tier


def _newest(conn: Any, table: Table) -> dict[int, int]:
    """Each machine's newest row (epoch ms)."""
    query = select(table.c.machine_id, func.max(table.c.date)).group_by(table.c.machine_id)
    return {row[0]: _ms(row[1]) for row in conn.execute(query) if row[1] is not None}


def _ms(value: dt.datetime | str) -> int:
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1000)


def _add_missing_machines(
    conn: Any, result: QueryResult, ids: dict[str, int], now: dt.datetime
) -> None:
    """Machines with power or load series but no inventory entry (an agent's host)."""
    for key in result.keys:
        if key.entity not in ids:
            row = {"kind": "host", "rack": None, "slot": None, "attributes": "{}"}
            inserted = conn.execute(
                machine_table.insert().values(name=key.entity, present=True, updated_at=now, **row)
            )
            ids[key.entity] = int(inserted.inserted_primary_key[0])


def _rows(
    result: QueryResult,
    ids: Mapping[str, int],
    done_power: Mapping[int, int],
    done_load: Mapping[int, int],
    since_ms: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer as table rows, each machine's rows after its newest one in the table."""
    value_column = "value" if "value" in result.columns else "avg"
    power: list[dict[str, Any]] = []
    loads: dict[tuple[int, int], dict[str, Any]] = {}
    for key, rows in result:
        machine = ids.get(key.entity)
        if machine is None:
            continue
        ts = np.asarray(rows["ts"], dtype=np.int64)
        values = np.asarray(rows[value_column], dtype=np.float64)
        if key.metric == POWER:
            after = max(since_ms - 1, done_power.get(machine, since_ms - 1))
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                if t > after:
                    power.append({"machine_id": machine, "date": _when(t), "value": _finite(v)})
        elif key.metric in LOADS:
            after = max(since_ms - 1, done_load.get(machine, since_ms - 1))
            column = ("avg1mn", "avg5mn", "avg15mn")[LOADS.index(key.metric)]
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                if t > after:
                    row = loads.setdefault(
                        (machine, t),
                        {"machine_id": machine, "date": _when(t)}
                        | dict.fromkeys(("avg1mn", "avg5mn", "avg15mn")),
                    )
                    row[column] = _finite(v)
    return power, list(loads.values())


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- sources


class StoreSource:
    """The store itself (this process opened it; `close` closes it)."""

    def __init__(self, store: Store, where: str = "the store") -> None:
        self.store, self.where = store, where

    def inventory(self) -> list[EntityRecord]:
        return self.store.inventory()

    def query(self, q: Query) -> QueryResult:
        return self.store.query(replace(q, entity="**", metrics=(POWER, *LOADS)))

    def newest_ms(self) -> int | None:
        latest = self.store.latest("**", (POWER, *LOADS))
        return int(latest.ts.max()) if len(latest.ts) else None

    def close(self) -> None:
        self.store.close()


class ServerSource:
    """The REST API of the `rackwatch run` that holds the store (`/inventory`, `/series`)."""

    def __init__(self, series: RemoteSource) -> None:
        self.series = series
        self.where = series.where

    def inventory(self) -> list[EntityRecord]:
        answer = self.series.api.get("/inventory")
        entities = answer.get("entities", []) if isinstance(answer, dict) else []
        return [
            EntityRecord(str(e["path"]), str(e["kind"]), dict(e.get("attributes") or {}))
            for e in entities
            if isinstance(e, dict) and "path" in e and "kind" in e
        ]

    def query(self, q: Query) -> QueryResult:
        if not self.series.n_series:
            return _empty()
        return self.series.query(q)

    def newest_ms(self) -> int | None:
        return self.series.newest_ms

    def close(self) -> None:
        self.series.close()


def _empty() -> QueryResult:
    none = np.zeros(0, np.int64)
    return QueryResult(
        tier=Tier.RAW,
        bucket_ms=0,
        keys=(),
        series_ids=np.zeros(0, np.int32),
        offsets=np.zeros(1, np.int64),
        ts=none,
        columns={"value": np.zeros(0)},
    )
