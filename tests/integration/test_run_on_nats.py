"""`rackwatch run --bus nats://…`: the pipeline that `build_services` wires, on NATS JetStream.

Needs a NATS server with JetStream on 127.0.0.1:4222 (skipped, saying so, without one); each
test has its own prefix, so its streams are its own, and deletes them at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rackwatch import app
from rackwatch.bus import subjects
from rackwatch.model import Command, EventKind
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NATS_URL = "nats://127.0.0.1:4222"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HANG_GUARD_S = 60.0  # only against a hang: every wait below ends on a count, not a time
FAN = "c01/r01/s01/fan1"


def _nats_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 4222), 1):
        return True
    return False


@pytest.fixture
def prefix() -> Iterator[str]:
    pytest.importorskip("nats", reason="nats-py is not installed (the `nats` extra)")
    if not _nats_answers():
        pytest.skip("no NATS server answers on 127.0.0.1:4222 (run nats-server -js)")
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    asyncio.run(_delete_streams(name))


async def _stream_names(prefix: str) -> list[str]:
    """The streams on the server named after `prefix` (other tests' are not ours)."""
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        names = [s.config.name or "" for s in await nc.jetstream().streams_info()]
        return [n for n in names if n.startswith(f"{prefix.upper()}_")]
    finally:
        await nc.close()


async def _delete_streams(prefix: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    from rackwatch.bus.nats import NatsBus

    nc = await nats.connect(NATS_URL)
    try:
        for name in NatsBus(prefix=prefix).stream_names.values():
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


async def _until(done: object) -> None:
    assert callable(done)
    async with asyncio.timeout(HANG_GUARD_S):
        while not done():
            await asyncio.sleep(0.01)


def test_run_live_on_nats_stores_the_twin_and_obeys_a_fan_command(
    tmp_path: Path, prefix: str
) -> None:
    from rackwatch.bus.nats import NatsBus

    settings = load_settings(
        data_dir=tmp_path,
        twin={"scenario": "small", "speed": 3000.0},
        host={"enabled": False},  # only the twin's samples
        bus={"url": NATS_URL, "prefix": prefix},
    )
    services = app.build_services(settings, start_ms=START_MS)
    assert isinstance(services.bus, NatsBus)
    poller, twin = services.poller, services.twin
    assert poller is not None and twin is not None

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(app.run_live(services, stop))
        await _until(lambda: poller.steps_done >= 50)
        # As the control API sends it: on commands.control, through the controller.
        await services.bus.publish(
            subjects.commands("control"),
            Command(FAN, "fan.set_level", {"level": 3}, issued_by="test"),
        )
        await _until(lambda: twin.fan_levels()[FAN] == 3)
        applied_at = poller.steps_done
        await _until(lambda: poller.steps_done >= applied_at + 20)
        stop.set()
        await runner
        # run_live closed its bus; the streams it made are still on the server until cleanup.
        streams = set(await _stream_names(prefix))
        assert set(NatsBus(prefix=prefix).stream_names.values()) <= streams

    try:
        asyncio.run(scenario())
        assert services.intelligence is not None  # its health samples go through NATS too
        derived = services.intelligence.n_health_samples
        # Everything published was stored and seen live: none lost at start or at stop.
        assert services.writer.n_samples == poller.n_samples + derived > derived > 0
        assert services.live.n_samples == services.writer.n_samples
        end = START_MS + poller.steps_done * 5000
        for server in twin.topology.server_paths:  # every server's samples came through
            assert len(services.store.query(Query(START_MS, end, entity=server))) > 0, server
        level = services.store.query(Query(START_MS, end, entity=FAN, metrics="fan_level"))
        assert level["value"][-1] == 3  # the command reached the twin through NATS
        kinds = {e.kind for e in services.store.events(START_MS, end + 1)}
        assert EventKind.COMMAND_APPLIED in kinds  # an event, through NATS, to the writer
    finally:
        services.close()
    # The fixture deleted nothing yet: check the cleanup it does works.
    asyncio.run(_delete_streams(prefix))
    assert asyncio.run(_stream_names(prefix)) == []
