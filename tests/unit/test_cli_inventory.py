"""`rackwatch inventory sync` and `list`: the declared inventory (a TOML file the settings
name) brought into the store with an event per change, its refusals, and what sources report
otherwise (the declaration wins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.model import SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore

runner = CliRunner()
DECLARED = """
[[racks]]
path = "c01/r01"
slots = 42

[[pdus]]
path = "c01/r01/pdu"
rack = "c01/r01"
outlets = 24

[[machines]]
path = "c01/r01/s01"
kind = "server"
rack = "c01/r01"
slot = 1
outlets = ["c01/r01/pdu:1", "c01/r01/pdu:2"]
owner = "lab"
"""


@pytest.fixture
def room(tmp_path: Path) -> Path:
    made = runner.invoke(
        cli, ["simulate", "-o", str(tmp_path / "data"), "-s", "small", "--hours", "0.1"]
    )
    assert made.exit_code == 0, made.output
    (tmp_path / "inventory.toml").write_text(DECLARED)
    (tmp_path / "rackwatch.toml").write_text(f'[inventory]\nfile = "{tmp_path}/inventory.toml"\n')
    return tmp_path


def invoke(room: Path, *args: str) -> tuple[int, str]:
    done = runner.invoke(
        cli,
        [*args, "--data-dir", str(room / "data"), "--config", str(room / "rackwatch.toml")],
        env={"COLUMNS": "200"},
    )
    text = "".join(" " if ch in "│┃" else ch for ch in done.output)
    return done.exit_code, " ".join(text.split())


def stored(room: Path) -> tuple[dict[str, EntityRecord], list[str]]:
    store = DuckDBStore(room / "data" / "rackwatch.duckdb", SeriesRegistry())
    try:
        records = {r.path: r for r in store.inventory()}
        kinds = [e.kind for e in store.events(0, 2**62)]
        return records, kinds
    finally:
        store.close()


def test_sync_writes_the_declaration_once_with_an_event_per_change(room: Path) -> None:
    code, said = invoke(room, "inventory", "sync", "--dry-run")
    assert code == 0 and "5 added, 0 changed, 0 removed (would be written)" in said
    assert "c01/r01/pdu/outlet01" not in stored(room)[0]

    code, said = invoke(room, "inventory", "sync")
    assert code == 0 and "5 added, 0 changed, 0 removed (were written)" in said
    records, kinds = stored(room)
    outlet = records["c01/r01/pdu/outlet02"]
    assert (outlet.kind, outlet.attributes["machine"], outlet.attributes["number"]) == (
        "outlet",
        "c01/r01/s01",
        2,
    )
    s01 = records["c01/r01/s01"].attributes
    assert s01["owner"] == "lab" and s01["peak_watts"] > 0  # declared, and the twin's own
    assert kinds.count("inventory.changed") == 5

    assert "0 added, 0 changed, 0 removed" in invoke(room, "inventory", "sync")[1]

    (room / "inventory.toml").write_text(
        DECLARED.replace('"lab"', '"hpc"').replace(', "c01/r01/pdu:2"', "")
    )
    code, said = invoke(room, "inventory", "sync")
    assert "0 added, 1 changed, 1 removed" in said
    records, kinds = stored(room)
    assert "c01/r01/pdu/outlet02" not in records
    assert records["c01/r01/s01"].attributes["owner"] == "hpc"
    assert kinds.count("inventory.changed") == 7


def test_what_a_source_reports_otherwise_is_a_disagreement(room: Path) -> None:
    invoke(room, "inventory", "sync")
    store = DuckDBStore(room / "data" / "rackwatch.duckdb", SeriesRegistry())
    try:  # an agent (say) reports another slot and owner
        store.upsert_inventory([EntityRecord("c01/r01/s01", "host", {"slot": 7, "os": "Linux"})])
    finally:
        store.close()
    code, said = invoke(room, "inventory", "list", "--kind", "server")
    assert code == 0
    assert "c01/r01/s01 slot 1 7" in said and "the declaration wins" in said
    code, said = invoke(room, "inventory", "sync")
    assert "c01/r01/s01 slot 1 7" in said
    assert "inventory.disagreement" in stored(room)[1]


def test_list_json_is_one_object_per_entity(room: Path) -> None:
    invoke(room, "inventory", "sync")
    done = runner.invoke(
        cli,
        [
            *("inventory", "list", "--json", "--kind", "outlet"),
            *("--data-dir", str(room / "data"), "--config", str(room / "rackwatch.toml")),
        ],
    )
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.output.splitlines()]
    assert [(o["path"], o["attributes"]["machine"]) for o in lines] == [
        ("c01/r01/pdu/outlet01", "c01/r01/s01"),
        ("c01/r01/pdu/outlet02", "c01/r01/s01"),
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[[machines]]\npath = 'a'\noutlets = ['c01/r01/pdu:3']\n", "not a declared PDU"),
        ("[[machines]\n", "not valid TOML"),
        ("[[machines]]\npath = 'a'\ncolour = 'red'\n", "machines.0.colour"),
    ],
)
def test_a_bad_declaration_is_refused_and_nothing_changes(room: Path, text: str, said: str) -> None:
    (room / "inventory.toml").write_text(text)
    before = stored(room)
    code, output = invoke(room, "inventory", "sync")
    assert code == 2 and said in output and "inventory.toml" in output
    assert stored(room) == before
