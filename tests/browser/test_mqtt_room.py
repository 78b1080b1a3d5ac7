"""The room built from MQTT devices, in the dashboard: `rackwatch devices` publishes the fan-fail
twin on the shared Mosquitto (a topic prefix of this test's own), `rackwatch run --no-twin
--no-host --mqtt` takes them, and the overview draws exactly those servers in their rack, live,
with their fans driven by the MQTT fan controller (docs/MQTT.md)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BROKER = "mqtt://127.0.0.1:1883"
SERVERS = [f"c01/r01/s0{i}" for i in (5, 4, 3, 2, 1)]  # slot 1 at the bottom of the rack


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _broker_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 1883)) == 0


@pytest.fixture
def mqtt_devices(tmp_path: Path) -> Iterator[str]:
    """`rackwatch devices` (fan-fail at 20x) under a prefix of its own; the prefix."""
    if not _broker_up() and not os.environ.get("CI"):
        pytest.skip("needs Mosquitto on 127.0.0.1:1883")
    prefix = f"rwbrowser-{uuid.uuid4().hex[:10]}"
    with open(tmp_path / "devices.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rackwatch",
                "devices",
                "--mqtt",
                BROKER,
                "--scenario",
                "fan-fail",
                "--speed",
                "20",
                "--prefix",
                prefix,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(2.0)  # its retained capabilities are on the broker before the run starts
            assert proc.poll() is None, (tmp_path / "devices.log").read_text()
            yield prefix
        finally:
            proc.terminate()  # by PID: a clean stop publishes every device offline
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            _clear_retained(prefix)


def _clear_retained(prefix: str) -> None:
    """Empty every retained message under the prefix (the broker is shared)."""
    topics: set[str] = set()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: topics.add(message.topic)
    client.connect("127.0.0.1", 1883)
    client.subscribe(f"{prefix}/#")
    client.loop_start()
    time.sleep(1.0)
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    # and the persistent sessions of the devices and of the run (a clean connect ends one)
    for session in {f"{prefix}-{t.split('/')[1]}" for t in topics} | {f"{prefix}-run"}:
        forget = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=session)
        forget.connect("127.0.0.1", 1883)
        forget.disconnect()


def test_the_room_is_the_brokers_devices(
    mqtt_devices: str,
    start_server: Callable[[list[str], Path], str],
    tmp_path: Path,
    open_tab: Any,
    screenshot_dir: Path,
) -> None:
    config = tmp_path / "mqtt.toml"
    config.write_text(f'[mqtt]\nprefix = "{mqtt_devices}"\nclient_id = "{mqtt_devices}-run"\n')
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    base = start_server(
        ["--no-twin", "--no-host", "--mqtt", BROKER, "--config", str(config)], data_dir
    )
    kinds = {e["path"]: e["kind"] for e in get_json(f"{base}/api/v1/inventory")["entities"]}
    assert sorted(p for p, k in kinds.items() if k == "server") == sorted(SERVERS)
    assert {p for p, k in kinds.items() if k == "fan"} == {
        f"{s}/fan{f}" for s in SERVERS for f in (1, 2)
    }
    fans = get_json(f"{base}/api/v1/fans")["fans"]
    assert len(fans) == 10  # the MQTT devices' fans, driven by their controller

    tab = open_tab()
    tab.page.goto(base)
    tab.page.wait_for_selector('#conn[data-state="live"]')
    tab.page.wait_for_function(
        "s => /\\d+\\.\\d °C/.test(document.querySelector(s)?.textContent ?? '')",
        arg=f'[data-entity="{SERVERS[-1]}"] .tile-temp',
    )
    tiles = tab.page.locator(".rack .tile").evaluate_all("ts => ts.map(t => t.dataset.entity)")
    assert tiles == SERVERS
    tab.page.screenshot(path=screenshot_dir / "mqtt-room.png", full_page=True)
    tab.assert_no_errors()
