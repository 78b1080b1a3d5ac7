"""The overview's GPU recommendation panel in a real Chromium against a real `rackwatch run`
(fixtures in conftest.py): four GPU servers pushed on `POST /api/v1/ingest` as `rackwatch
agent` sends them; the panel shows the top 3 by free GPU memory in order, each machine's like
index, and where a job of 2 GPUs x 50 GB fits, with why. Without GPU machines it stays hidden.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

GIB = 1024**3
NO_HORIZONTAL_OVERFLOW_JS = "document.documentElement.scrollWidth <= window.innerWidth"
# Per host: CPU utilisation and its cards as (free GiB, utilisation), 80 GiB each.
HOSTS = {
    "host/reco-a": (0.1, [(70, 0.1), (60, 0.1)]),  # 130 GiB free, high
    "host/reco-b": (0.1, [(79, 0.05)] * 4),  # 316 GiB free, high
    "host/reco-c": (0.2, [(20, 0.9)]),  # 20 GiB free, its card busy: low
    "host/reco-d": (0.2, [(40, 0.2), (40, 0.2)]),  # 80 GiB free, half its memory: medium
}


def ingest_body() -> dict[str, Any]:
    entities: dict[str, dict[str, float]] = {}
    inventory: list[dict[str, Any]] = []
    for host, (cpu, cards) in HOSTS.items():
        entities[host] = {"cpu_utilization_ratio": cpu, "memory_available_bytes": 200 * GIB}
        inventory.append({"entity": host, "kind": "host", "attributes": {"logical_cores": 32}})
        for k, (free, util) in enumerate(cards):
            entities[f"{host}/gpu{k}"] = {
                "gpu_memory_free_bytes": free * GIB,
                "gpu_memory_used_bytes": (80 - free) * GIB,
                "gpu_utilization_ratio": util,
            }
            inventory.append(
                {
                    "entity": f"{host}/gpu{k}",
                    "kind": "gpu",
                    "attributes": {
                        "index": k,
                        "name": "NVIDIA A100",
                        "memory_total_bytes": 80 * GIB,
                    },
                }
            )
    batch = {"ts_ms": int(time.time() * 1000), "entities": entities}
    return {"batches": [batch], "inventory": inventory}


@pytest.fixture(scope="module")
def gpu_server(
    start_server: Callable[[list[str], Path], str],
    new_token: Callable[[Path, str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A server of its own (the fan-fail twin) with the four GPU hosts pushed once; they stay
    online for the test (offline only after 10 minutes of silence)."""
    data_dir = tmp_path_factory.mktemp("rackwatch-recommend")
    config = data_dir / "rackwatch.toml"
    config.write_text("[host]\noffline_after_seconds = 600\n")
    base = start_server(["--scenario", "fan-fail", "--config", str(config)], data_dir)
    request = urllib.request.Request(
        f"{base}/api/v1/ingest",
        data=json.dumps(ingest_body()).encode(),
        headers={
            "Authorization": f"Bearer {new_token(data_dir, 'ingest')}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
    return base


def texts(tab: Any, selector: str) -> list[str]:
    return [" ".join(t.split()) for t in tab.page.locator(selector).all_inner_texts()]


def test_the_panel_shows_the_top_3_in_order_and_each_like_index(
    gpu_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab(1366, 900)
    tab.page.goto(gpu_server)
    tab.page.wait_for_selector('#gpu-reco:not([hidden]) .gpu-top-item[data-rank="3"]')
    top = tab.page.locator(".gpu-top-item")
    assert [top.nth(i).get_attribute("data-entity") for i in range(3)] == [
        "host/reco-b",
        "host/reco-a",
        "host/reco-d",
    ]
    assert texts(tab, ".gpu-top-item .gpu-free") == [
        "316 GiB free of 320 GiB",
        "130 GiB free of 160 GiB",
        "80.0 GiB free of 160 GiB",
    ]
    assert top.first.locator(".gpu-name").get_attribute("href") == "host.html?entity=host/reco-b"
    likes = {
        item.get_attribute("data-entity"): item.locator(".like-chip").inner_text()
        for item in tab.page.locator(".gpu-machine").all()
    }
    assert likes == {
        "host/reco-a": "high",
        "host/reco-b": "high",
        "host/reco-c": "low",
        "host/reco-d": "medium",
    }
    why = tab.page.locator('.gpu-machine[data-entity="host/reco-c"]').get_attribute("title")
    assert why is not None and "GPUs at or above 70 %" in why
    assert tab.page.locator("#gpu-reco-counts").inner_text() == "2 high · 1 medium · 1 low"

    # Where 2 GPUs with 50 GB each fit: reco-b (29 GiB to spare), then reco-a (10 GiB).
    tab.page.fill("#place-gpus", "2")
    tab.page.fill("#place-gb", "50")
    tab.page.click("#gpu-place button")
    tab.page.wait_for_selector('#gpu-place-answer .place-summary[data-candidates="2"]')
    candidates = tab.page.locator(".place-candidate")
    assert [candidates.nth(i).get_attribute("data-entity") for i in range(2)] == [
        "host/reco-b",
        "host/reco-a",
    ]
    assert "29.0 GiB to spare" in candidates.first.locator(".place-why").inner_text()
    assert texts(tab, ".place-rejected-item") == [
        "host/reco-c: 0 of 1 cards fit, 2 needed (1 busy (≥ 80 %))",
        "host/reco-d: 0 of 2 cards fit, 2 needed (2 with under 50.0 GiB free)",
    ]
    tab.page.screenshot(path=screenshot_dir / "recommend.png", full_page=True)
    tab.assert_no_errors()


def test_on_a_phone_the_panel_fits_the_screen(gpu_server: str, open_tab: Any) -> None:
    tab = open_tab(390, 844, is_mobile=True, has_touch=True)
    tab.page.goto(gpu_server)
    tab.page.wait_for_selector('#gpu-reco:not([hidden]) .gpu-top-item[data-rank="3"]')
    assert tab.page.evaluate(NO_HORIZONTAL_OVERFLOW_JS)
    tab.assert_no_errors()


def test_without_gpu_machines_the_panel_stays_hidden(live_server: str, open_tab: Any) -> None:
    tab = open_tab(1366, 900)
    tab.page.goto(live_server)
    tab.page.wait_for_selector('#gpu-reco[data-machines="0"]', state="attached")
    assert tab.page.locator("#gpu-reco").is_hidden()
    tab.assert_no_errors()
