"""MQTT ingest: 2,000 devices at 5 s through the real broker into Batches on the bus.

    python bench/bench_mqtt.py [--devices 2000] [--interval 5] [--duration 30] [--qos 1]
                               [--broker mqtt://127.0.0.1:1883]

A publisher in a separate process (paho-mqtt, one connection) plays `--devices` servers under
a topic prefix of its own: each announces its capabilities (retained), then sends a telemetry
message every `--interval` seconds (6 values and 2 fans of 3 values: 12 samples, as a twin
server), the devices spread evenly over the interval, each stamped with the wall clock when
it is sent. This process runs `MqttSource` (the ingest side of `rackwatch run --mqtt`) on a
`MemoryBus` and a consumer of `telemetry.mqtt` that takes, for every sample, its lag: the
wall clock when the Batch reaches the consumer minus the sample's timestamp (publisher ->
broker -> client -> validation -> Batch -> bus; both processes read the same clock).

Printed: samples/s and messages/s ingested over the measured window (after the first
interval, which is warm-up), lag p50/p99/max, the ingest process's CPU (user + system, this
process only, percent of one core) over the window, bad payloads and messages lost (sent by
the publisher, never ingested). The retained capabilities are cleared at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import time
import uuid

import numpy as np
import paho.mqtt.client as paho

from rackwatch.bus import MemoryBus, subjects
from rackwatch.model import SeriesRegistry
from rackwatch.sources.mqtt import BrokerAddress, MqttSource


def device_id(k: int) -> str:
    return f"c{k // 400 + 1:02d}.r{k // 20 % 20 + 1:02d}.s{k % 20 + 1:02d}"


def publish(
    address: BrokerAddress,
    prefix: str,
    n: int,
    interval_s: float,
    rounds: int,
    qos: int,
    ready: mp.synchronize.Event,
    sent: mp.sharedctypes.Synchronized[int],
) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(address.host, address.port)
    client.loop_start()
    caps = json.dumps({"kind": "server", "fans": ["fan1", "fan2"]})
    for k in range(n):
        client.publish(f"{prefix}/{device_id(k)}/capabilities", caps, qos=1, retain=True)
    ready.wait()
    rng = np.random.default_rng(1)
    start = time.time()
    count = 0
    for r in range(rounds):
        for k in range(n):
            due = start + r * interval_s + k * interval_s / n
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            base = rng.normal(50, 5, 6).round(2).tolist()
            payload = {
                "ts": round(time.time() * 1000),
                "values": {
                    "cpu_temperature_celsius": base[0],
                    "inlet_temperature_celsius": base[1],
                    "chassis_temperature_celsius": base[2],
                    "power_watts": base[3] * 5,
                    "airflow_cfm": base[4],
                    "cpu_utilization_ratio": 0.5,
                },
                "components": {
                    f: {"fan_level": 2, "fan_rpm": 6000.0, "fan_power_watts": 4.8}
                    for f in ("fan1", "fan2")
                },
            }
            client.publish(f"{prefix}/{device_id(k)}/telemetry", json.dumps(payload), qos=qos)
            count += 1
    with sent.get_lock():
        sent.value = count
    time.sleep(1.0)
    for k in range(n):
        client.publish(f"{prefix}/{device_id(k)}/capabilities", b"", qos=1, retain=True)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


async def ingest(args: argparse.Namespace) -> None:
    address = BrokerAddress.parse(args.broker)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    rounds = max(2, round(args.duration / args.interval))
    bus, registry = MemoryBus(), SeriesRegistry()
    source = MqttSource(address, registry, bus, prefix=prefix, client_id=f"{prefix}-ingest")
    lags: list[np.ndarray] = []
    window_start = time.time() + args.interval  # the first interval is warm-up
    n_window = [0]

    async def consume() -> None:
        async with bus.subscribe(subjects.telemetry("mqtt"), max_pending=100_000) as batches:
            async for _s, batch in batches:
                now_ms = time.time() * 1000
                if now_ms / 1000 >= window_start:
                    lags.append(now_ms - batch.ts)
                    n_window[0] += len(batch)

    consumer = asyncio.create_task(consume())
    runner = asyncio.create_task(source.run())
    await source.connected.wait()
    ctx = mp.get_context("spawn")
    ready, sent = ctx.Event(), ctx.Value("q", 0)
    proc = ctx.Process(
        target=publish,
        args=(address, prefix, args.devices, args.interval, rounds, args.qos, ready, sent),
    )
    proc.start()
    while len(source.inventory.devices) < args.devices:  # the capabilities are in
        await asyncio.sleep(0.1)
    ready.set()
    await asyncio.sleep(max(0.0, window_start - time.time()))
    usage0, t0, samples0 = resource.getrusage(resource.RUSAGE_SELF), time.time(), source.n_samples
    messages0 = source.n_messages
    end = window_start - args.interval + rounds * args.interval
    await asyncio.sleep(max(0.0, end - time.time()))
    usage1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    samples1, messages1 = source.n_samples, source.n_messages
    await asyncio.to_thread(proc.join, 30)
    await asyncio.sleep(1.0)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    bus.close()
    await consumer

    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    wall = t1 - t0
    lag = np.concatenate(lags) if lags else np.zeros(1)
    n_telemetry = source.n_samples // 12
    print(
        f"devices {args.devices}, every {args.interval:g} s, QoS {args.qos}, {rounds} rounds, "
        f"window {wall:.1f} s"
    )
    print(
        f"ingest: {(samples1 - samples0) / wall:,.0f} samples/s, "
        f"{(messages1 - messages0) / wall:,.0f} messages/s"
    )
    print(
        f"lag (publish -> Batch on the bus): p50 {np.percentile(lag, 50):.1f} ms, "
        f"p99 {np.percentile(lag, 99):.1f} ms, max {lag.max():.1f} ms"
    )
    print(
        f"ingest CPU: {100 * cpu / wall:.1f} % of one core "
        f"({1e6 * cpu / max(1, messages1 - messages0):.0f} us per message)"
    )
    print(
        f"telemetry messages: sent {sent.value}, ingested {n_telemetry}, "
        f"lost {sent.value - n_telemetry}; bad payloads {source.n_bad_payloads}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    asyncio.run(ingest(parser.parse_args()))


if __name__ == "__main__":
    main()
