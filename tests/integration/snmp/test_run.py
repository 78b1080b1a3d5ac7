"""`rackwatch run` with `[[pdus]]`: the wiring polls the PDU on its interval, stores its
outlets, total and machines, and records the PDU and its outlets in the inventory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rackwatch import app
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

from .conftest import Agent

pytestmark = pytest.mark.integration


def test_run_polls_the_configured_pdus(agent: Agent, tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        twin={"enabled": False},
        host={"enabled": False},
        intelligence={"enabled": False},
        pdus=[
            {
                "name": "rack1-a",
                "host": agent.host,
                "port": agent.port,
                "community": "apc-rpdu2",
                "profile": "apc-rpdu2",
                "interval_seconds": 1,
                "timeout_seconds": 0.5,
                "retries": 0,
                "outlets": {1: "web1", 2: "web1"},
            }
        ],
    )
    services = app.build_services(settings)
    assert services.pdus is not None
    started_ms = int(time.time() * 1000) - 1000

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        while not any(r.kind == "outlet" for r in services.store.inventory()):
            await asyncio.sleep(0.05)
        while services.writer.n_samples < 20:
            await asyncio.sleep(0.05)
        stop.set()
        await runner

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
        end_ms = int(time.time() * 1000) + 1000
        web1 = services.store.query(Query(started_ms, end_ms, entity="host/web1"))
        assert set(web1["value"].tolist()) == {255.0}
        total = services.store.query(Query(started_ms, end_ms, entity="pdu/rack1-a"))
        assert set(total["value"].tolist()) == {990.0}
        outlets = services.store.query(Query(started_ms, end_ms, entity="pdu/rack1-a/*"))
        assert len(outlets) >= 6 * 3  # power, current and state of six outlets
        kinds = {r.path: r.kind for r in services.store.inventory()}
        assert kinds["pdu/rack1-a"] == "pdu"
        assert kinds["pdu/rack1-a/outlet06"] == "outlet"
    finally:
        services.close()
