"""GET /inventory with a declared inventory: outlets and machines as declared, and the
declared attributes a source reported otherwise listed as disagreements."""

from __future__ import annotations

from pathlib import Path

import httpx
from api_support import Filled, LiveApp, make_ctx

from rackwatch.api import create_app
from rackwatch.engine import inventory as inv
from rackwatch.engine.live import LiveState
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord
from rackwatch.store.duckdb import DuckDBStore


def test_declared_outlets_and_disagreements(tmp_path: Path) -> None:
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path / "store.duckdb", registry)
    decl = inv.load(
        {
            "pdus": [{"path": "c01/r01/pdu", "outlets": 8}],
            "machines": [
                {"path": "host/gpu01", "slot": 3, "gpu_count": 8, "outlets": ["c01/r01/pdu:5"]}
            ],
        },
        "test",
    )
    plan = inv.plan_sync(inv.declared_records(decl), store.inventory())
    store.upsert_inventory(plan.write)
    store.upsert_inventory([EntityRecord("host/gpu01", "host", {"gpu_count": 4, "os": "Linux"})])
    app = LiveApp(create_app(make_ctx(Filled(store, registry, LiveState(0), Batch.empty()))))
    try:
        with httpx.Client(base_url=app.url, timeout=10) as http:
            body = http.get("/api/v1/inventory").json()
            outlets = http.get("/api/v1/inventory", params={"kind": "outlet"}).json()
    finally:
        app.close()
        store.close()
    gpu = next(e for e in body["entities"] if e["path"] == "host/gpu01")
    assert gpu["kind"] == "machine" and gpu["attributes"]["gpu_count"] == 8
    assert gpu["attributes"]["os"] == "Linux"
    assert body["disagreements"] == [
        {"path": "host/gpu01", "field": "gpu_count", "declared": 8, "discovered": 4}
    ]
    assert [(e["path"], e["parent"], e["attributes"]["machine"]) for e in outlets["entities"]] == [
        ("c01/r01/pdu/outlet05", "c01/r01/pdu", "host/gpu01")
    ]
    assert outlets["disagreements"] == []
