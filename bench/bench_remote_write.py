"""Prometheus remote write benchmark (issue 13): encode + compress, and end to end.

    python bench/bench_remote_write.py [--servers 2000] [--steps 12] [--batch-samples 10000]
                                       [--e2e-seconds 20] [--no-e2e]

Data: the twin's very-large preset with `--servers / 20` clusters (2,000 servers: 26,405
series, one sample each per 5 s step), `--steps` steps read as rackwatch's TwinSource reads
them. Figures, on one core (the encoder runs in one thread):

- encode: `WriteRequestEncoder.encode` (labels already learnt), samples/s, for requests of
  `--batch-samples` samples cut from the steps, as the sink cuts them;
- encode + snappy: the same, then `cramjam.snappy.compress_raw` (what the sink posts), with the
  compressed bytes per sample;
- protobuf runtime: the same request built with Google's protobuf (`upb`) message by message
  (label tuples cached per series, one `Sample` per sample) and serialised, for comparison;
  the two outputs are checked equal after decoding;
- first request: learning the labels of every series (once per series per process).

End to end (skipped with `--no-e2e`, or when `/usr/bin/victoria-metrics` is missing): a
VictoriaMetrics on a free port and a temporary directory, a `RemoteWriteSink` on a MemoryBus,
the steps published as fast as the sink takes them for `--e2e-seconds` (timestamps moved so
every step is new): samples/s accepted (2xx) and the process's CPU over that window; then the
count of samples VictoriaMetrics holds (/api/v1/export) against those sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cramjam
import httpx
import numpy as np
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

from rackwatch.bus.memory import MemoryBus
from rackwatch.engine.remote_write import RemoteWriteSink, WriteRequestEncoder
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

VM = "/usr/bin/victoria-metrics"


def write_request_class() -> Any:
    """prompb's WriteRequest (the fields rackwatch sends) from a descriptor, no protoc."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="bench_remote.proto", package="prometheus", syntax="proto3"
    )
    for name, fields in (
        ("Label", [("name", 1, field.TYPE_STRING, None), ("value", 2, field.TYPE_STRING, None)]),
        (
            "Sample",
            [("value", 1, field.TYPE_DOUBLE, None), ("timestamp", 2, field.TYPE_INT64, None)],
        ),
        (
            "TimeSeries",
            [
                ("labels", 1, field.TYPE_MESSAGE, ".prometheus.Label"),
                ("samples", 2, field.TYPE_MESSAGE, ".prometheus.Sample"),
            ],
        ),
        ("WriteRequest", [("timeseries", 1, field.TYPE_MESSAGE, ".prometheus.TimeSeries")]),
    ):
        message = proto.message_type.add(name=name)
        for fname, number, kind, type_name in fields:
            message.field.add(
                name=fname,
                number=number,
                type=kind,
                label=field.LABEL_REPEATED if kind == field.TYPE_MESSAGE else field.LABEL_OPTIONAL,
                type_name=type_name,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


def encode_with_runtime(cls: Any, labels: list[list[tuple[str, str]]], batch: Batch) -> bytes:
    """The same request through the protobuf runtime (sorted by series then time, like ours)."""
    order = np.lexsort((batch.ts, batch.series))
    series, ts, value = batch.series[order], batch.ts[order], batch.value[order]
    request = cls()
    current = -1
    timeseries: Any = None
    stale = float(np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0])
    for sid, t, v in zip(series.tolist(), ts.tolist(), value.tolist(), strict=True):
        if sid != current:
            current = sid
            timeseries = request.timeseries.add()
            for name, label_value in labels[sid]:
                timeseries.labels.add(name=name, value=label_value)
        timeseries.samples.add(value=stale if math.isnan(v) else v, timestamp=t)
    data: bytes = request.SerializeToString()
    return data


def cut(batches: list[Batch], size: int) -> list[Batch]:
    whole = Batch.concat(batches)
    return [whole.take(np.arange(i, min(i + size, len(whole)))) for i in range(0, len(whole), size)]


def timed(fn: Any, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_encode(args: argparse.Namespace) -> tuple[SeriesRegistry, list[Batch]]:
    twin = Twin("very-large", clusters=max(1, args.servers // 20), start_ms=int(time.time() * 1e3))
    registry = SeriesRegistry()
    source = TwinSource(twin, registry)
    steps = [source.read(1)[0] for _ in range(args.steps)]
    n_samples = sum(map(len, steps))
    print(
        f"twin: {twin.topology.n_servers} servers, {len(registry)} series, "
        f"{args.steps} steps, {n_samples} samples"
    )
    requests = cut(steps, args.batch_samples)
    encoder = WriteRequestEncoder(registry, external_labels={"site": "bench"})
    first = timed(lambda: WriteRequestEncoder(registry).encode(steps[0]), 1)
    print(f"first request (learns {len(registry)} series' labels): {first * 1e3:.1f} ms")
    encoder.encode(steps[0])

    def ours() -> None:
        for request in requests:
            encoder.encode(request)

    def ours_snappy() -> None:
        for request in requests:
            cramjam.snappy.compress_raw(encoder.encode(request).data)

    t_ours = timed(ours, 5)
    t_snappy = timed(ours_snappy, 5)
    raw = sum(len(encoder.encode(r).data) for r in requests)
    packed = sum(len(cramjam.snappy.compress_raw(encoder.encode(r).data)) for r in requests)
    print(
        f"requests of {args.batch_samples} samples ({len(requests)}): "
        f"{raw / n_samples:.1f} B/sample raw, {packed / n_samples:.1f} B/sample snappy"
    )
    print(f"encode:             {n_samples / t_ours:12,.0f} samples/s per core")
    print(f"encode + snappy:    {n_samples / t_snappy:12,.0f} samples/s per core")
    cls = write_request_class()
    labels = [encoder.labels(sid) for sid in range(len(registry))]
    t_runtime = timed(lambda: [encode_with_runtime(cls, labels, r) for r in requests], 2)
    print(
        f"protobuf runtime:   {n_samples / t_runtime:12,.0f} samples/s per core "
        f"(ours x{t_runtime / t_ours:.1f})"
    )
    for request in requests[:3]:
        mine, theirs = cls(), cls()
        mine.ParseFromString(encoder.encode(request).data)
        theirs.ParseFromString(encode_with_runtime(cls, labels, request))
        assert mine == theirs, "the hand encoder and the protobuf runtime disagree"
    print("check: hand-encoded requests decode equal to the runtime's")
    return registry, steps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def push(
    registry: SeriesRegistry, steps: list[Batch], url: str, args: argparse.Namespace
) -> tuple[int, int, float, float]:
    bus = MemoryBus()
    sink = RemoteWriteSink(
        bus, registry, url, batch_samples=args.batch_samples, flush_seconds=0.5,
        queue_samples=max(args.batch_samples, 4 * sum(map(len, steps))),
    )  # fmt: skip
    task = asyncio.create_task(sink.run())
    await sink.ready.wait()
    step_ms = 5000
    span_ms = step_ms * len(steps)
    offered = 0

    async def publish_round(round_: int) -> None:
        nonlocal offered
        for step in steps:
            await bus.publish(
                "telemetry.twin", Batch(step.ts + round_ * span_ms, step.series, step.value)
            )
            offered += len(step)
            await asyncio.sleep(0)
            while sink.pending + bus.pending > 2 * len(step):  # measure the sender, not a queue
                await asyncio.sleep(0.005)

    async def settled() -> None:
        while bus.pending or sink.n_sent + sink.n_failed + sink.n_dropped < offered:
            await asyncio.sleep(0.01)

    start = time.perf_counter()
    await publish_round(0)  # VictoriaMetrics registers the new series: slower, not measured
    await settled()
    print(f"first round (new series in victoria-metrics): {time.perf_counter() - start:.1f} s")
    measured_from = sink.n_sent
    cpu0, t0 = time.process_time(), time.perf_counter()
    round_ = 1
    while time.perf_counter() - t0 < args.e2e_seconds:
        await publish_round(round_)
        round_ += 1
    await settled()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    bus.close()
    await task
    assert sink.n_failed == 0 and sink.n_dropped == 0, (sink.n_failed, sink.n_dropped)
    return sink.n_sent, sink.n_sent - measured_from, elapsed, cpu


def bench_e2e(registry: SeriesRegistry, steps: list[Batch], args: argparse.Namespace) -> None:
    binary = shutil.which("victoria-metrics") or (VM if os.path.exists(VM) else None)
    if binary is None:
        print("end to end: skipped (apt install victoria-metrics)")
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [binary, f"-storageDataPath={Path(tmp) / 'vm'}", f"-httpListenAddr=127.0.0.1:{port}",
             "-retentionPeriod=100y", "-loggerLevel=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            total, sent, elapsed, cpu = asyncio.run(
                push(registry, steps, f"{base}/api/v1/write", args)
            )
            print(
                f"end to end to victoria-metrics: {sent:,} samples in {elapsed:.1f} s = "
                f"{sent / elapsed:,.0f} samples/s, rackwatch CPU {cpu / elapsed:.0%} of a core"
            )
            httpx.get(f"{base}/internal/force_flush", timeout=30)
            held = 0
            with httpx.stream(
                "POST",
                f"{base}/api/v1/export",
                data={
                    "match[]": '{__name__=~"rackwatch_.*"}',
                    "start": "0",
                    "end": str(int(time.time()) + 86_400),  # later rounds are ahead of now
                },
                timeout=120,
            ) as response:
                for line in response.iter_lines():
                    if line:
                        held += len(json.loads(line)["values"])
            verdict = "all there" if held == total else "MISSING SOME"
            print(
                f"victoria-metrics export: {held:,} values held of {total:,} sent "
                f"(first round included): {verdict}"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-samples", type=int, default=10_000)
    parser.add_argument("--e2e-seconds", type=float, default=20.0)
    parser.add_argument("--no-e2e", action="store_true")
    args = parser.parse_args()
    registry, steps = bench_encode(args)
    if not args.no_e2e:
        bench_e2e(registry, steps, args)


if __name__ == "__main__":
    main()
