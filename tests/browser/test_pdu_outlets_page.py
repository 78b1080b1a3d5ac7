"""A PDU's outlets on the dashboard (issue 11's proof), end to end: a real SNMP agent (snmpsim
serving the APC rPDU2 recording of tests/integration/snmp/data) polled by a real `rackwatch
run` through `[[pdus]]`, the outlets mapped to machines by the declared inventory, and the
Inventory page in Chromium showing each outlet's machine, state, watts and amps."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

RECORDINGS = Path(__file__).parents[1] / "integration" / "snmp" / "data"
PDU = "pdu/rack1-a"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def snmp_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """snmpsim answering for the APC recording (community `apc-rpdu2`)."""
    responder = Path(sys.executable).parent / "snmpsim-command-responder"
    command = str(responder) if responder.exists() else shutil.which("snmpsim-command-responder")
    assert command, "snmpsim is not installed: run `bash scripts/install --dev`"
    work = tmp_path_factory.mktemp("snmpsim")
    port = free_udp_port()
    with open(work / "snmpsim.log", "wb") as log:
        process = subprocess.Popen(
            [
                command,
                f"--data-dir={RECORDINGS}",
                f"--cache-dir={work / 'cache'}",
                f"--agent-udpv4-endpoint=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        )
    try:
        time.sleep(1.0)  # rackwatch retries each poll; the page test waits for readings
        assert process.poll() is None, (work / "snmpsim.log").read_text()[-2000:]
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def base(
    start_server: Callable[[list[str], Path], str],
    tmp_path_factory: pytest.TempPathFactory,
    snmp_port: int,
) -> str:
    data_dir = tmp_path_factory.mktemp("rackwatch-pdu")
    (data_dir / "inventory.toml").write_text(
        f"""
[[pdus]]
path = "{PDU}"
outlets = 24
model = "APC AP8959"

[[machines]]
path = "host/web1"
kind = "server"
outlets = ["{PDU}:1", "{PDU}:2"]
owner = "web"
"""
    )
    config = data_dir / "rackwatch.toml"
    config.write_text(
        f"""
[twin]
enabled = false

[inventory]
file = "{data_dir / "inventory.toml"}"

[[pdus]]
name = "rack1-a"
host = "127.0.0.1"
port = {snmp_port}
community = "apc-rpdu2"
profile = "apc-rpdu2"
interval_seconds = 2
timeout_seconds = 1
"""
    )
    return start_server(["--config", str(config)], data_dir)


def test_a_pdu_s_outlets_with_their_machines_and_readings(
    base: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    tab.page.goto(f"{base}/inventory.html")
    first = f'.outlet-row[data-entity="{PDU}/outlet01"]'
    # the first poll, then the page's next read of /live (every 5 s); the outlets the PDU
    # reports beyond the two declared ones, and their names, come with the inventory it
    # re-reads when a reading names an outlet it does not list
    tab.page.wait_for_selector(f'{first}[data-on="true"]', timeout=30_000)
    tab.page.wait_for_function(
        """([row]) => document.querySelectorAll('.outlet-row').length === 6 &&
            document.querySelector(row + ' td[data-col="name"]').textContent === 'web1-psu1'""",
        arg=[first],
        timeout=30_000,
    )
    cell = lambda row, col: tab.page.locator(f'{row} td[data-col="{col}"]').inner_text()  # noqa: E731
    assert cell(first, "name") == "web1-psu1"
    assert tab.page.locator(f'{first} td[data-col="machine"] a').inner_text() == "host/web1"
    assert cell(first, "watts").endswith("W") and cell(first, "amps").endswith("A")
    assert tab.page.locator(".outlet-row").count() == 6  # every outlet the PDU reports
    off = f'.outlet-row[data-entity="{PDU}/outlet06"]'
    assert cell(off, "state") == "off"
    head = tab.page.locator(f'.pdu-block[data-entity="{PDU}"]').inner_text()
    assert "APC AP8959" in head and "total 990 W" in head
    tab.page.screenshot(path=screenshot_dir / "pdu-outlets.png", full_page=True)
    tab.assert_no_errors()
