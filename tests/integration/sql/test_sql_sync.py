"""`rackwatch sql sync` into SQLite, and into the PostgreSQL and MariaDB servers this machine
and CI run (a database of its own per test, dropped after): seed 003's tables filled from the
inventory and the history, incrementally, never a row twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore

runner = CliRunner()
START = "2026-01-01T00:00:00"
START_MS = 1_767_225_600_000
PDU = "c01/r01/pdu"
SERVERS = 5
SERVERS_ADMIN = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/mysql",
}


def simulate(data: Path, hours: float, *, append: bool = False) -> None:
    room = ["--scenario", "small", "--hours", str(hours), "--seed", "4"]
    room += ["--append"] if append else ["--start", START]
    made = runner.invoke(cli, ["simulate", *room, "--out", str(data)])
    assert made.exit_code == 0, made.output


def add_pdu_and_loads(data: Path, minutes: int) -> None:
    """The PDU's outlets (s01 dual-corded on 1 and 2, s02 on 3) and s02's load averages."""
    registry = SeriesRegistry()
    store = DuckDBStore(data / "rackwatch.duckdb", registry)
    try:
        store.upsert_inventory(
            [
                EntityRecord(PDU, "pdu", {"host": "10.0.0.9", "port": 161, "outlets": 24}),
                *(
                    EntityRecord(f"{PDU}/outlet{n:02d}", "outlet", {"number": n, "machine": m})
                    for n, m in ((1, "c01/r01/s01"), (2, "c01/r01/s01"), (3, "c01/r01/s02"))
                ),
            ]
        )
        ts = START_MS + 60_000 * np.arange(minutes, dtype=np.int64)
        for k, metric in enumerate(("load_average_1m", "load_average_5m", "load_average_15m")):
            sid = registry.intern("c01/r01/s02", metric)
            store.write(Batch.of(ts, np.full(minutes, sid, np.int32), 1.0 + k + ts * 0.0))
        store.flush()
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'powermon.db'}"
        return
    request.applymarker(pytest.mark.integration)
    name = f"rackwatch_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SERVERS_ADMIN[kind], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        url = SERVERS_ADMIN[kind].rsplit("/", 1)[0] + f"/{name}"
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def sync(data: Path, url: str) -> str:
    done = runner.invoke(
        cli,
        ["sql", "sync", "--url", url, "--data-dir", str(data), "--since", START],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 0, done.output
    return " ".join(done.output.split())


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_tables_filled_then_only_what_is_new(tmp_path: Path, database: str) -> None:
    data = tmp_path / "data"
    simulate(data, 1.0)
    add_pdu_and_loads(data, 60)
    first = sync(data, database)
    assert "PDUs 1 added, 0 changed, 0 gone" in first
    assert f"machines {SERVERS} added" in first and "outlets 3 added" in first
    # 1 h of 5-s samples: minutes 00:00 to 00:58 (the one still filling is left for later)
    assert f"power_cons {SERVERS * 59:,} rows added" in first
    assert "cpu_charge 59 rows added" in first
    plugged = rows(
        database,
        "SELECT p.name, o.number, m.name FROM outlet o JOIN pdu p ON p.id = o.pdu_id "
        "JOIN machine m ON m.id = o.machine_id ORDER BY o.number",
    )
    assert plugged == [
        (PDU, 1, "c01/r01/s01"),
        (PDU, 2, "c01/r01/s01"),
        (PDU, 3, "c01/r01/s02"),
    ]
    (load,) = rows(
        database,
        "SELECT avg1mn, avg5mn, avg15mn FROM cpu_charge c JOIN machine m ON m.id = c.machine_id"
        " WHERE m.name = 'c01/r01/s02' ORDER BY c.date LIMIT 1",
    )
    assert load == (1.0, 2.0, 3.0)
    ((count, distinct),) = rows(
        database, "SELECT COUNT(*), COUNT(DISTINCT machine_id) FROM power_cons"
    )
    assert (count, distinct) == (SERVERS * 59, SERVERS)

    again = sync(data, database)
    assert "power_cons 0 rows added" in again and "machines 0 added, 0 changed" in again

    simulate(data, 0.5, append=True)  # half an hour more
    later = sync(data, database)
    assert f"power_cons {SERVERS * 30:,} rows added" in later
    # the primary key (machine_id, date) would have refused a row copied twice
    assert rows(database, "SELECT COUNT(*) FROM power_cons") == [(SERVERS * 89,)]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("nonsense", "not a database URL"),
        ("oracle+nodriver://x@y/z", "dialect"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "error"),
    ],
)
def test_bad_urls_say_why(tmp_path: Path, url: str, said: str) -> None:
    data = tmp_path / "data"
    simulate(data, 0.1)
    done = runner.invoke(
        cli, ["sql", "sync", "--url", url, "--data-dir", str(data)], env={"COLUMNS": "200"}
    )
    assert done.exit_code == 2
    assert said in done.output
