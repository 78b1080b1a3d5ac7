"""The declared inventory: checked references, records for every entity and outlet, a sync
that adds, changes and removes with an event each, and disagreements with what sources
report (the declaration wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rackwatch.engine import inventory as inv
from rackwatch.store.base import EntityRecord

ROOM: dict[str, Any] = {
    "sites": [{"path": "orsay", "address": "Bat. 200"}],
    "rooms": [{"path": "orsay/room1", "site": "orsay"}],
    "racks": [{"path": "c01/r01", "room": "orsay/room1", "slots": 42}],
    "pdus": [{"path": "c01/r01/pdu1", "rack": "c01/r01", "outlets": 24, "host": "10.0.0.9"}],
    "machines": [
        {
            "path": "host/gpu01",
            "kind": "gpu-server",
            "rack": "c01/r01",
            "slot": 12,
            "outlets": ["c01/r01/pdu1:3", "c01/r01/pdu1:4"],
            "memory_gib": 512,
            "gpu_count": 8,
            "gpu_models": ["H100 SXM5"],
            "cuda_version": "12.4",
            "owner": "ml",
        }
    ],
}


def records(data: dict[str, Any]) -> list[EntityRecord]:
    return inv.declared_records(inv.load(data, "test.toml"))


def test_every_entity_and_outlet_becomes_a_record() -> None:
    found = {r.path: r for r in records(ROOM)}
    assert sorted(found) == [
        "c01/r01",
        "c01/r01/pdu1",
        "c01/r01/pdu1/outlet03",
        "c01/r01/pdu1/outlet04",
        "host/gpu01",
        "orsay",
        "orsay/room1",
    ]
    gpu = found["host/gpu01"]
    assert gpu.kind == "gpu-server" and gpu.attributes["gpu_models"] == ["H100 SXM5"]
    assert "owner" in gpu.attributes["declared"] and "location" not in gpu.attributes
    assert found["c01/r01/pdu1/outlet04"].attributes["machine"] == "host/gpu01"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d["machines"][0].update(rack="c01/r09"), "rack 'c01/r09', which is not"),
        (lambda d: d["machines"][0].update(outlets=["c01/r01/pdu1:25"]), "outlet 25"),
        (lambda d: d["machines"][0].update(outlets=["c01/r01/pdu9:1"]), "not a declared PDU"),
        (lambda d: d["machines"].append({"path": "host/b", "outlets": ["c01/r01/pdu1:3"]}), "both"),
        (lambda d: d["machines"].append({"path": "host/gpu01"}), "declared twice"),
        (lambda d: d["machines"][0].update(memory_gib=-1), "machines.0.memory_gib"),
        (lambda d: d["racks"][0].update(colour="red"), "racks.0.colour"),
        (lambda d: d["machines"][0].update(path="host/gpu 01"), "letters, digits"),
    ],
)
def test_a_bad_declaration_is_refused_saying_where(change: Any, said: str) -> None:
    data = {k: [dict(i) for i in v] for k, v in ROOM.items()}
    change(data)
    with pytest.raises(inv.InventoryError, match=said) as caught:
        inv.load(data, "inventory.toml")
    assert str(caught.value).startswith("inventory.toml: ")


def test_a_file_that_is_not_toml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text("[[machines]\npath =")
    with pytest.raises(inv.InventoryError, match="not valid TOML"):
        inv.load_file(path)
    with pytest.raises(inv.InventoryError, match="cannot read"):
        inv.load_file(tmp_path / "none.toml")


def test_sync_adds_changes_and_removes_each_with_an_event() -> None:
    first = inv.plan_sync(records(ROOM), [])
    assert {c.change for c in first.changes} == {"added"} and len(first.write) == 7
    stored = first.write
    assert inv.plan_sync(records(ROOM), stored).changes == []  # nothing to do twice

    later = {k: [dict(i) for i in v] for k, v in ROOM.items()}
    later["machines"][0].update(owner="hpc", outlets=["c01/r01/pdu1:3"])
    later["sites"] = []
    later["rooms"][0].pop("site")
    plan = inv.plan_sync(records(later), stored)
    got = {(c.path, c.change, c.fields) for c in plan.changes}
    assert got == {
        ("host/gpu01", "changed", ("outlets", "owner")),
        ("orsay/room1", "changed", ("site",)),
        ("orsay", "removed", ()),
        ("c01/r01/pdu1/outlet04", "removed", ()),
    }
    assert sorted(plan.remove) == ["c01/r01/pdu1/outlet04", "orsay"]
    events = plan.events(1_000)
    assert {e.kind for e in events} == {inv.INVENTORY_CHANGED}
    assert {e.attributes["change"] for e in events} == {"changed", "removed"}


def test_a_removed_declaration_keeps_what_a_source_discovered() -> None:
    stored = inv.plan_sync(records(ROOM), []).write
    from rackwatch.store.inventory import overlay

    gpu = next(r for r in stored if r.path == "host/gpu01")
    found = overlay(gpu, EntityRecord("host/gpu01", "host", {"cpu_model": "EPYC", "owner": "x"}))
    rest = [r for r in stored if r.path != "host/gpu01"] + [found]
    without = {k: v for k, v in ROOM.items() if k != "machines"}
    plan = inv.plan_sync(records(without), rest)
    kept = {r.path: r for r in plan.keep_discovered}
    assert kept["host/gpu01"] == EntityRecord(
        "host/gpu01", "gpu-server", {"cpu_model": "EPYC", "owner": "x"}
    )
    assert "host/gpu01" not in plan.remove


def test_disagreements_with_what_sources_report() -> None:
    from rackwatch.store.inventory import overlay

    gpu = next(r for r in inv.plan_sync(records(ROOM), []).write if r.path == "host/gpu01")
    reported = {"slot": 12, "gpu_count": 4, "memory_total_bytes": 503 * 2**30, "os": "Linux"}
    merged = overlay(gpu, EntityRecord("host/gpu01", "host", reported))
    assert merged.attributes["gpu_count"] == 8  # the declaration wins
    found = {(d.field, d.declared, d.discovered) for d in inv.disagreements([merged])}
    assert found == {("gpu_count", 8, 4)}  # 503 GiB is within 5 % of 512
    close = overlay(gpu, EntityRecord("host/gpu01", "host", {"memory_total_bytes": 256 * 2**30}))
    assert [(d.field, d.discovered) for d in inv.disagreements([close])] == [("memory_gib", 256.0)]
    (event,) = inv.disagreement_events(inv.disagreements([merged]), 5)
    assert event.kind == inv.INVENTORY_DISAGREEMENT and event.attributes["declared"] == 8
