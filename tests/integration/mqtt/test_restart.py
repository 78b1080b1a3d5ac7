"""A broker restart: the source reconnects, subscribes again, and loses no QoS-1 message.

A private mosquitto (the shared one cannot be restarted by a test) is stopped and started
again on the same port. With persistence, the broker keeps the source's session (it connects
with `clean_session=False` and a fixed id) and queues the QoS-1 telemetry published while the
source is still away; without it, the session is gone and only the source's own new
subscription brings the later messages.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rackwatch.sources.mqtt import MqttSource

from .conftest import PrivateBroker, free_port, needs_mosquitto, publisher, running_source, wait_for

pytestmark = [pytest.mark.integration, needs_mosquitto]

TS = 1_767_225_600_000


async def _publish(broker: PrivateBroker, prefix: str, steps: range) -> None:
    async with publisher(broker.address) as client:
        for k in steps:
            payload = {"ts": TS + k * 5000, "values": {"cpu_temperature_celsius": 40.0 + k}}
            await client.publish(f"{prefix}/c01.r01.s01/telemetry", json.dumps(payload), qos=1)


@pytest.mark.parametrize("persistence", [True, False], ids=["persistent", "fresh-broker"])
def test_a_broker_restart_loses_no_qos1_message(
    tmp_path: Path, prefix: str, persistence: bool
) -> None:
    broker = PrivateBroker(tmp_path, free_port(), persistence=persistence)
    broker.start()

    async def main() -> tuple[MqttSource, list[int], int]:
        async with running_source(broker.address, prefix, backoff_s=1.5) as (source, collected, _):
            await _publish(broker, prefix, range(5))
            await wait_for(lambda: source.n_samples == 5, what="the first 5")
            await asyncio.to_thread(broker.stop)
            await wait_for(lambda: not source.connected.is_set(), what="the loss")
            await asyncio.to_thread(broker.start)
            connects_while_away = source.n_connects
            if persistence:  # queued by the broker for the source's session
                await _publish(broker, prefix, range(5, 10))
                connects_while_away = source.n_connects
            await wait_for(lambda: source.n_connects == 2, 15, "the reconnection")
            await _publish(broker, prefix, range(10, 15))
            expected = 15 if persistence else 10
            await wait_for(lambda: source.n_samples >= expected, 15, f"{expected} samples")
            await asyncio.sleep(0.3)  # a duplicate (QoS 1 is at least once) would show now
            ts = sorted(t for t, _e, _m, _v in collected.samples(source.registry))
            return source, ts, connects_while_away

    try:
        source, ts, connects_while_away = asyncio.run(main())
    finally:
        broker.stop()
    assert connects_while_away == 1  # the source was still away when those were published
    steps = range(15) if persistence else [*range(5), *range(10, 15)]
    assert sorted(set(ts)) == [TS + k * 5000 for k in steps]
    assert source.n_connects == 2
    assert source.n_bad_payloads == 0
