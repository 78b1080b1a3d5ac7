"""The Hosts pages in a real Chromium against a real `rackwatch run` (fixtures in conftest.py).

The server watches this machine (every second here) and takes a GPU server's pushes on
`POST /api/v1/ingest` with an `ingest` token, as `rackwatch agent` sends them; `[host]
offline_after_seconds` is shortened to 4 s. What users of GPU servers asked for (seed 004),
checked the way they would see it: the fleet table lists both hosts with their figures, a
host's page draws its charts, a host that stops reporting turns offline after the timeout,
the nav link leads there, and a phone-sized screen never scrolls sideways.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rackwatch.sources.host.machine import host_name

pytestmark = pytest.mark.browser

OFFLINE_AFTER_S = 4
GPU_HOST = "host/gpu-test-01"
GIB = 1024**3
MIB = 1024**2
# Seed 004's demo: TITAN Xp cards with 12,196 MiB, 7,271 MiB of the first in use.
INVENTORY = [
    {
        "entity": GPU_HOST,
        "kind": "host",
        "attributes": {
            "os_pretty_name": "Ubuntu 22.04.4 LTS",
            "cpu_model": "AMD EPYC 7543",
            "logical_cores": 64,
            "memory_total_bytes": 128 * GIB,
            "addresses": {"eno1": ["10.0.0.21"]},
        },
    },
    {
        "entity": f"{GPU_HOST}/disk-root",
        "kind": "disk",
        "attributes": {"mountpoint": "/", "device": "/dev/nvme0n1p2", "total_bytes": 2000 * GIB},
    },
    *(
        {
            "entity": f"{GPU_HOST}/gpu{k}",
            "kind": "gpu",
            "attributes": {"index": k, "name": "TITAN Xp", "memory_total_bytes": 12_196 * MIB},
        }
        for k in range(2)
    ),
]
READINGS = {
    GPU_HOST: {
        "uptime_seconds": 7_793_761,
        "cpu_utilization_ratio": 0.42,
        "load_average_1m": 12.5,
        "memory_used_bytes": 32 * GIB,
        "memory_available_bytes": 96 * GIB,
    },
    f"{GPU_HOST}/disk-root": {
        "disk_used_bytes": 1820 * GIB,
        "disk_free_bytes": 180 * GIB,
        "disk_utilization_ratio": 0.91,
    },
    f"{GPU_HOST}/net-eno1": {
        "network_receive_bytes_per_second": 1.5e6,
        "network_transmit_bytes_per_second": 3.5e5,
    },
    f"{GPU_HOST}/gpu0": {
        "gpu_utilization_ratio": 0.97,
        "gpu_memory_used_bytes": 7_271 * MIB,
        "gpu_memory_free_bytes": 4_925 * MIB,
        "gpu_temperature_celsius": 71,
    },
    f"{GPU_HOST}/gpu1": {
        "gpu_utilization_ratio": 0.0,
        "gpu_memory_used_bytes": 10 * MIB,
        "gpu_memory_free_bytes": 12_186 * MIB,
        "gpu_temperature_celsius": 35,
    },
}
ROW = f'tr.host-row[data-entity="{GPU_HOST}"]'
LOCAL = f"host/{host_name(None)}"  # this machine, as `rackwatch run` names it
LOCAL_ROW = f'tr.host-row[data-entity="{LOCAL}"]'
NO_HORIZONTAL_OVERFLOW_JS = "document.documentElement.scrollWidth <= window.innerWidth"


class Agent:
    """Pushes the GPU server every second from a thread, as `rackwatch agent` would."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.last_push_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def push(self, *, with_inventory: bool = False) -> None:
        body: dict[str, Any] = {
            "batches": [{"ts_ms": int(time.time() * 1000), "entities": READINGS}]
        }
        if with_inventory:
            body["inventory"] = INVENTORY
        request = urllib.request.Request(
            f"{self.base}/api/v1/ingest",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        self.last_push_s = time.monotonic()

    def start(self) -> None:
        self.push(with_inventory=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.push()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def hosts_server(
    start_server: Callable[[list[str], Path], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A server of its own: the fan-fail twin in real time, this machine collected every
    second, real machines offline after 4 s without telemetry."""
    data_dir = tmp_path_factory.mktemp("rackwatch-hosts")
    config = data_dir / "rackwatch.toml"
    config.write_text(f"[host]\ninterval_seconds = 1\noffline_after_seconds = {OFFLINE_AFTER_S}\n")
    base = start_server(["--scenario", "fan-fail", "--config", str(config)], data_dir)
    return base, data_dir


@pytest.fixture(scope="module")
def base(hosts_server: tuple[str, Path]) -> str:
    return hosts_server[0]


@pytest.fixture(scope="module")
def agent(hosts_server: tuple[str, Path], new_token: Callable[[Path, str], str]) -> Iterator[Agent]:
    base, data_dir = hosts_server
    pushing = Agent(base, new_token(data_dir, "ingest"))
    pushing.start()
    yield pushing
    pushing.stop()


def hosts_api(base: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v1/hosts", timeout=5) as response:
        return {h["entity"]: h for h in json.load(response)["hosts"]}


def hosts_tab(open_tab: Any, base: str, *size: int, **options: Any) -> Any:
    """The Hosts page in a new tab, once the GPU server's row is there and online."""
    tab = open_tab(*size, **options)
    tab.page.goto(f"{base}/hosts.html")
    tab.page.wait_for_selector(f'{ROW}[data-online="true"]')
    return tab


def cell(tab: Any, row: str, column: str) -> str:
    return " ".join(tab.page.locator(f'{row} td[data-col="{column}"]').inner_text().split())


@pytest.mark.usefixtures("agent")
def test_the_hosts_page_lists_this_machine_and_a_pushed_gpu_server(
    base: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = hosts_tab(open_tab, base, 1280, 900)
    tab.page.wait_for_selector(f'{LOCAL_ROW}[data-online="true"]')
    assert tab.page.locator("#hosts-summary").get_attribute("data-hosts") == "2"

    # This machine, as `rackwatch run` collects it: its CPU, memory and disk figures.
    assert cell(tab, LOCAL_ROW, "status") == "online"
    assert re.fullmatch(r"\d+\.\d % load \d+\.\d\d", cell(tab, LOCAL_ROW, "cpu"))
    assert re.fullmatch(r"\d+\.\d % [\d.]+ / [\d.]+ [KMGT]iB", cell(tab, LOCAL_ROW, "memory"))
    assert re.search(r"on /$", cell(tab, LOCAL_ROW, "disk"))
    assert cell(tab, LOCAL_ROW, "gpus").startswith("0")

    # The GPU server, with what it pushed, in the document's shape.
    assert tab.page.locator(f"{ROW} .host-link").inner_text() == "gpu-test-01"
    assert cell(tab, ROW, "name") == "gpu-test-01 10.0.0.21 · Ubuntu 22.04.4 LTS"
    assert cell(tab, ROW, "uptime") == "90 d 4 h"
    assert cell(tab, ROW, "cpu") == "42.0 % load 12.50"
    assert cell(tab, ROW, "memory") == "25.0 % 32.0 / 128 GiB"
    assert cell(tab, ROW, "disk") == "91.0 % 1.8 / 2.0 TiB on /"
    assert (
        tab.page.locator(f'{ROW} td[data-col="disk"] .meter-fill').get_attribute("data-level")
        == "crit"
    )
    assert cell(tab, ROW, "network") == "↓ 1.5 MB/s ↑ 350 kB/s"
    assert cell(tab, ROW, "gpus") == "2 TITAN Xp"
    gpus = tab.page.locator(f"{ROW} .gpu-mini")
    assert [" ".join(t.split()) for t in gpus.all_inner_texts()] == [
        "0 97.0 % 7.1 / 11.9 GiB",
        "1 0.0 % 0.0 / 11.9 GiB",
    ]
    tab.page.screenshot(path=screenshot_dir / "hosts.png", full_page=True)

    # Sorted by a column heading (largest CPU first), kept in the URL; filtered by a word.
    tab.page.click('#hosts-head [data-sort="gpus"]')
    assert tab.page.locator("tr.host-row").first.get_attribute("data-entity") == GPU_HOST
    assert "sort=gpus" in tab.page.url and "dir=desc" in tab.page.url
    assert tab.page.locator('th[data-col="gpus"]').get_attribute("aria-sort") == "descending"
    tab.page.fill("#hosts-filter", "titan")
    tab.page.wait_for_function("() => document.querySelectorAll('tr.host-row').length === 1")
    assert tab.page.locator("tr.host-row").get_attribute("data-entity") == GPU_HOST
    tab.assert_no_errors()


@pytest.mark.usefixtures("agent")
def test_a_phone_sized_screen_shows_hosts_as_cards_without_scrolling_sideways(
    base: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = hosts_tab(open_tab, base, 390, 844, is_mobile=True, has_touch=True)
    assert tab.page.evaluate(NO_HORIZONTAL_OVERFLOW_JS)
    assert tab.page.locator(ROW).evaluate("tr => getComputedStyle(tr).display") == "grid"
    tab.page.screenshot(path=screenshot_dir / "hosts-phone.png", full_page=True)
    tab.page.goto(f"{base}/host.html?entity={GPU_HOST}")
    tab.page.wait_for_selector("#chart-gpu-util canvas")
    assert tab.page.evaluate(NO_HORIZONTAL_OVERFLOW_JS)
    tab.page.screenshot(path=screenshot_dir / "host-phone.png", full_page=True)
    tab.assert_no_errors()


@pytest.mark.usefixtures("agent")
def test_a_host_page_draws_its_live_and_stored_charts(
    base: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab(1280, 900)
    tab.page.goto(f"{base}/host.html?entity={GPU_HOST}")
    tab.page.wait_for_selector('#conn[data-state="live"]')
    tab.page.wait_for_selector('#host-online .host-status[data-online="true"]')
    assert tab.page.locator("#host-name").inner_text() == "gpu-test-01"
    assert tab.page.locator('#kpis [data-kpi="cpu"] .kpi-text').inner_text() == "42.0 %"
    assert tab.page.locator('#kpis [data-kpi="gpus"] .kpi-text').inner_text() == "2"
    assert tab.page.locator('#facts [data-fact="cuda"]').count() == 0  # not in its inventory
    assert "AMD EPYC 7543" in tab.page.locator('#facts [data-fact="cpu"]').inner_text()
    gpu_rows = tab.page.locator("#gpus tbody tr")
    assert gpu_rows.count() == 2
    assert "7.1 / 11.9 GiB" in gpu_rows.first.inner_text()
    # Charts of what it sends, from the store, then moving with the stream.
    for chart in ("cpu", "memory", "disk-usage", "network", "gpu-util", "gpu-memory"):
        tab.page.wait_for_function(
            "id => Number(document.getElementById(id)?.dataset.points) >= 2",
            arg=f"chart-{chart}",
        )
    assert tab.page.locator("#chart-frequency").count() == 0  # it sends no frequency
    assert tab.page.locator("#chart-gpu-util").get_attribute("data-series") == "2"
    points = int(tab.page.locator("#chart-cpu").get_attribute("data-points") or 0)
    tab.page.wait_for_function(
        "n => Number(document.getElementById('chart-cpu').dataset.points) > n", arg=points
    )
    tab.page.click('.range-btn[data-range="15m"]')
    assert "range=15m" in tab.page.url
    tab.page.screenshot(path=screenshot_dir / "host.png", full_page=True)

    # This machine's page: its cores, memory and disks, charted too.
    tab.page.goto(f"{base}/host.html?entity={LOCAL}")
    for chart in ("cpu", "cores", "memory", "load", "disk-usage"):
        tab.page.wait_for_function(
            "id => Number(document.getElementById(id)?.dataset.points) >= 1",
            arg=f"chart-{chart}",
        )
    tab.page.screenshot(path=screenshot_dir / "host-local.png", full_page=True)
    tab.assert_no_errors()


def test_a_host_that_stops_reporting_turns_offline_after_the_timeout(
    base: str, agent: Agent, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = hosts_tab(open_tab, base, 1280, 900)
    agent.stop()
    time.sleep(1.0)
    assert hosts_api(base)[GPU_HOST]["online"] is True  # silent for under 2 s: not yet
    tab.page.wait_for_selector(
        f'{ROW}[data-online="false"]', timeout=OFFLINE_AFTER_S * 1000 + 15_000
    )
    silent_s = time.monotonic() - agent.last_push_s
    assert silent_s >= OFFLINE_AFTER_S - 0.5  # not before the timeout
    status = cell(tab, ROW, "status")
    assert re.fullmatch(r"offline last seen \d+ s ago", status), status
    assert cell(tab, LOCAL_ROW, "status") == "online"  # this machine still reports
    answer = hosts_api(base)[GPU_HOST]
    assert answer["online"] is False and answer["state"]["state"] == "UNKNOWN"
    assert "source agent sent nothing" in answer["state"]["reason"]
    tab.page.screenshot(path=screenshot_dir / "hosts-offline.png", full_page=True)

    tab.page.click(f"{ROW} .host-link")
    tab.page.wait_for_url(re.compile(r"host\.html\?entity=host/gpu-test-01"))
    tab.page.wait_for_selector('#host-online .host-status[data-online="false"]')
    assert re.search(r"last seen \d+ s ago", tab.page.locator("#host-online").inner_text())
    assert tab.page.locator("#page").get_attribute("data-state") == "UNKNOWN"
    tab.assert_no_errors()


def test_the_nav_link_leads_to_the_hosts(base: str, open_tab: Any) -> None:
    tab = open_tab(1280, 900)
    for page in ("", "server.html?entity=c01/r01/s01", "alerts.html"):
        tab.page.goto(f"{base}/{page}")
        tab.page.click("#nav-hosts")
        tab.page.wait_for_url(re.compile(r"/hosts\.html"))
        tab.page.wait_for_selector(f'{LOCAL_ROW}[data-online="true"]')
    assert tab.page.title() == "rackwatch · hosts"
    assert tab.page.locator("#nav-hosts").get_attribute("aria-current") == "page"
    tab.page.click(f"{LOCAL_ROW} .host-link")
    tab.page.wait_for_selector("#host-online .host-status")
    tab.page.click('#crumbs a[href="hosts.html"]')
    tab.page.wait_for_url(re.compile(r"/hosts\.html"))
    tab.assert_no_errors()
