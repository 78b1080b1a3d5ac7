"""The Inventory page in a real Chromium against a real `rackwatch run` whose settings declare
an inventory (docs/INVENTORY.md): the PDU with its outlets and what is plugged in, the
declared machines, and a disagreement with what the twin reports (its s01 sits in slot 1,
the declaration says 9); the page reached from the nav, loading nothing from elsewhere."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

INVENTORY = """
[[racks]]
path = "c01/r01"
slots = 42

[[pdus]]
path = "c01/r01/pdu"
rack = "c01/r01"
outlets = 8
model = "APC AP8959"

[[machines]]
path = "c01/r01/s01"
kind = "server"
rack = "c01/r01"
slot = 9
outlets = ["c01/r01/pdu:1", "c01/r01/pdu:2"]
owner = "lab-ml"

[[machines]]
path = "host/gpu01"
kind = "gpu-server"
outlets = ["c01/r01/pdu:5"]
gpu_count = 8
gpu_models = ["H100 SXM5"]
cuda_version = "12.4"
memory_gib = 512
"""


@pytest.fixture(scope="module")
def base(
    start_server: Callable[[list[str], Path], str], tmp_path_factory: pytest.TempPathFactory
) -> str:
    data_dir = tmp_path_factory.mktemp("rackwatch-inventory")
    (data_dir / "inventory.toml").write_text(INVENTORY)
    config = data_dir / "rackwatch.toml"
    config.write_text(f'[inventory]\nfile = "{data_dir / "inventory.toml"}"\n')
    return start_server(["--scenario", "small", "--config", str(config)], data_dir)


def test_the_pdu_its_outlets_machines_and_disagreements(
    base: str, open_tab: Any, screenshot_dir: Path
) -> None:
    with urllib.request.urlopen(f"{base}/api/v1/inventory", timeout=5) as response:
        api = json.load(response)
    assert {"path": "c01/r01/s01", "field": "slot", "declared": 9, "discovered": 1} in api[
        "disagreements"
    ]
    tab = open_tab()
    tab.page.goto(f"{base}/")
    tab.page.click("#nav-inventory")
    tab.page.wait_for_selector('.pdu-block[data-entity="c01/r01/pdu"] .outlet-row')
    rows = tab.page.locator(".outlet-row")
    assert rows.count() == 3
    first = '.outlet-row[data-entity="c01/r01/pdu/outlet01"]'
    assert tab.page.locator(f'{first} td[data-col="machine"] a').get_attribute("href") == (
        "server.html?entity=c01/r01/s01"
    )
    fifth = '.outlet-row[data-entity="c01/r01/pdu/outlet05"] td[data-col="machine"] a'
    assert tab.page.locator(fifth).get_attribute("href") == "host.html?entity=host/gpu01"
    gpu = " ".join(tab.page.locator('.machine-row[data-entity="host/gpu01"]').inner_text().split())
    assert "gpu-server" in gpu and "8 · H100 SXM5 · CUDA 12.4" in gpu and "512" in gpu
    issue = tab.page.locator('.disagreement-row[data-entity="c01/r01/s01"]').inner_text()
    assert "slot" in issue and "9" in issue and "1" in issue
    summary = tab.page.locator("#inventory-summary")
    assert summary.get_attribute("data-pdus") == "1"
    tab.page.screenshot(path=screenshot_dir / "inventory.png", full_page=True)
    tab.assert_no_errors()
