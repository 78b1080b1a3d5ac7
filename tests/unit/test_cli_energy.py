"""`rackwatch energy`: the accounting as a table or as the REST answer in JSON, from the store,
or through the server that holds it (the same document); bad options named."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus
from rackwatch.cli import cli
from rackwatch.engine.energy import EnergyConfig
from rackwatch.engine.live import LiveState
from rackwatch.model import SeriesRegistry
from rackwatch.readout import server_file
from rackwatch.settings import energy_config, load_settings

runner = CliRunner()
START = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("energy-cli")
    settings = load_settings(twin={"scenario": "small", "seed": 4})
    app.simulate(settings, duration_s=2 * 3600, out=data, start_ms=START)
    return data


def energy(data: Path, *args: str) -> Result:
    return runner.invoke(cli, ["energy", "--data-dir", str(data), *args])


def answer(data: Path, *args: str) -> dict[str, Any]:
    shown = energy(data, "--from", str(START), "--to", str(START + 2 * HOUR), *args, "-f", "json")
    assert shown.exit_code == 0, shown.output
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


def test_json_per_rack_from_the_store(data_dir: Path) -> None:
    found = answer(data_dir, "--group", "rack")
    assert (found["from_ms"], found["to_ms"], found["group"]) == (START, START + 2 * HOUR, "rack")
    assert [r["entity"] for r in found["rows"]] == ["c01/r01"]
    assert found["coverage"] == 1.0 and found["currency"] == "EUR"
    assert found["cost"] == pytest.approx(found["energy_kwh"] * 0.20, abs=1e-6)
    assert found["rows"][0]["metered_kwh"] == pytest.approx(found["energy_kwh"], rel=0.01)


def test_the_table_says_what_people_read(data_dir: Path) -> None:
    shown = energy(data_dir, "--from", str(START), "--to", str(START + HOUR), "--group", "server")
    assert shown.exit_code == 0, shown.output
    for text in ("IT energy", "kWh measured", "facility", "PUE", "fan policy", "c01/r01/s05"):
        assert text in shown.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--from", "yesterday"], "--from"),
        (["--to", "soon"], "--to"),
        (["--group", "cluster"], "--group"),
        (["--entity", "c01//s01"], "--entity"),
        (["--from", "now", "--to", "-1h"], "--from"),
    ],
)
def test_bad_options_are_refused_naming_them(data_dir: Path, args: list[str], option: str) -> None:
    shown = energy(data_dir, *args)
    assert shown.exit_code == 2 and option in shown.output, shown.output


@contextlib.contextmanager
def running_server(data: Path) -> Iterator[str]:
    """What `rackwatch run` does for the command: hold the store, serve the API over it and
    record the server."""
    registry = SeriesRegistry()
    settings = load_settings(data_dir=data)
    ready = threading.Event()
    box: dict[str, Any] = {}
    with contextlib.closing(app.open_store(settings, registry)) as store:
        ctx = ApiContext(
            store=store,
            registry=registry,
            live=LiveState(len(registry)),
            bus=MemoryBus(),
            energy=EnergyConfig(energy_config(settings).tariff),
        )

        async def main() -> None:
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            async with serving(create_app(ctx), "127.0.0.1", 0) as url:
                box["url"] = url
                ready.set()
                await box["stop"].wait()

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(20), "the test server did not start"
        server_file.record(data, box["url"])
        try:
            yield box["url"]
        finally:
            server_file.discard(data)
            box["loop"].call_soon_threadsafe(box["stop"].set)
            thread.join(10)


def test_through_the_running_server_the_same_document(data_dir: Path) -> None:
    local = answer(data_dir, "--group", "server")
    with running_server(data_dir) as url:
        shown = energy(
            data_dir, "--from", str(START), "--to", str(START + 2 * HOUR), "--group", "server",
            "-f", "json",
        )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert f"read through the running server at {url}" in shown.stderr
    assert json.loads(shown.stdout) == local
