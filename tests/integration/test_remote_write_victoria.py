"""The remote write sink against a real VictoriaMetrics (Debian's `victoria-metrics`, started
here on a free port with a temporary -storageDataPath): twin batches go through the bus and the
sink, and are read back through /api/v1/export (exact values and timestamps) and
/api/v1/query_range. Also: a VictoriaMetrics that comes up late gets the queued samples, a 4xx
is counted and never retried, and the queue stays bounded while nothing listens."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from rackwatch.bus import MemoryBus
from rackwatch.engine.remote_write import STALE_NAN_BITS, RemoteWriteSink
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

VICTORIA = "/usr/bin/victoria-metrics"
IN_CI = bool(os.environ.get("CI"))
needs_victoria = pytest.mark.skipif(
    shutil.which(VICTORIA) is None and not IN_CI,
    reason="needs Debian's victoria-metrics (apt-get install victoria-metrics)",
)
pytestmark = pytest.mark.integration
Points = dict[tuple[str, str], list[tuple[int, float | None]]]
"""(entity, metric) -> [(ts ms, value)], NULL as None (VictoriaMetrics exports it as null)."""
FAST = {"backoff_seconds": 0.05, "backoff_max_seconds": 0.2, "flush_seconds": 0.1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def victoria(tmp_path: Path, port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / f"victoria-{port}.log", "ab") as log:
        proc = subprocess.Popen(
            [
                VICTORIA,
                f"-storageDataPath={tmp_path / 'victoria'}",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",  # query up to now: the samples were just written
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (tmp_path / f"victoria-{port}.log").read_text()
                assert time.monotonic() < deadline, "victoria-metrics did not start in 30 s"
                time.sleep(0.05)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def twin_steps() -> tuple[SeriesRegistry, list[Batch]]:
    """A small twin's first steps, ending a minute ago (VictoriaMetrics takes samples up to
    now + 2 days), with some NULL readings."""
    start_ms = (int(time.time()) - 120) // 5 * 5000  # on the query_range steps below
    registry = SeriesRegistry()
    source = TwinSource(Twin("small", seed=5, start_ms=start_ms), registry)
    steps = [source.read(1)[0] for _ in range(12)]
    value = steps[4].value.copy()
    value[:3] = math.nan
    steps[4] = Batch(steps[4].ts, steps[4].series, value)
    return registry, steps


def export(base: str, match: str = '{__name__=~"rackwatch_.*"}') -> list[dict[str, object]]:
    httpx.get(f"{base}/internal/force_flush", timeout=30)
    response = httpx.post(
        f"{base}/api/v1/export",
        data={"match[]": match, "start": "0", "end": str(int(time.time()) + 3600)},
        timeout=60,
    )
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line]


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def with_sink(
    sink_of: Callable[[MemoryBus], RemoteWriteSink],
    body: Callable[[MemoryBus, RemoteWriteSink], Awaitable[None]],
) -> RemoteWriteSink:
    bus = MemoryBus()
    sink = sink_of(bus)
    task = asyncio.create_task(sink.run())
    await sink.ready.wait()
    try:
        await body(bus, sink)
    finally:
        bus.close()
        await asyncio.wait_for(task, 30)
    return sink


def expected(registry: SeriesRegistry, steps: list[Batch]) -> Points:
    """(entity, metric) -> [(ts, value)] as VictoriaMetrics exports them (NULL: null)."""
    want: Points = {}
    batch = Batch.concat(steps)
    for ts, sid, v in sorted(
        zip(batch.ts.tolist(), batch.series.tolist(), batch.value.tolist(), strict=True)
    ):
        entity, metric = registry.key(sid)
        want.setdefault((entity, metric), []).append((ts, None if math.isnan(v) else v))
    return want


def exported(rows: list[dict[str, object]]) -> Points:
    got: Points = {}
    for row in rows:
        labels = row["metric"]
        assert isinstance(labels, dict)
        key = (labels["entity"], labels["__name__"].removeprefix("rackwatch_"))
        values, stamps = row["values"], row["timestamps"]
        assert isinstance(values, list) and isinstance(stamps, list)
        got[key] = sorted(zip(stamps, values, strict=True))
    return got


@needs_victoria
def test_twin_batches_read_back_exactly(
    tmp_path: Path, twin_steps: tuple[SeriesRegistry, list[Batch]]
) -> None:
    registry, steps = twin_steps
    n_samples = sum(map(len, steps))
    with victoria(tmp_path, free_port()) as base:

        async def body(bus: MemoryBus, sink: RemoteWriteSink) -> None:
            for step in steps:
                await bus.publish("telemetry.twin", step)
            await until(lambda: sink.n_sent == n_samples, 30, "every sample accepted")

        sink = asyncio.run(
            with_sink(
                lambda bus: RemoteWriteSink(
                    bus,
                    registry,
                    f"{base}/api/v1/write",
                    external_labels={"site": "test"},
                    batch_samples=500,  # several requests, each cutting batches
                    **FAST,
                ),
                body,
            )
        )
        assert (sink.n_failed, sink.n_dropped, sink.n_retries) == (0, 0, 0)
        assert sink.n_requests >= math.ceil(n_samples / 500)
        rows = export(base)
        assert exported(rows) == expected(registry, steps)
        labels = next(r["metric"] for r in rows if r["metric"]["entity"] == "c01/r01/s01")  # type: ignore[index]
        assert labels["site"] == "test" and labels["server"] == "s01"  # type: ignore[index]

        # PromQL sees the NULL as a gap (staleness marker), not as the previous value held
        null_sid = int(steps[4].series[0])
        entity, metric = registry.key(null_sid)
        t4 = int(steps[4].ts[0]) // 1000
        response = httpx.get(
            f"{base}/api/v1/query_range",
            params={
                "query": f'rackwatch_{metric}{{entity="{entity}"}}',
                "start": str(t4 - 5),
                "end": str(t4 + 5),
                "step": "5s",
            },
            timeout=30,
        ).json()
        points = dict(response["data"]["result"][0]["values"])
        step_values = {int(b.ts[0]) // 1000: b.value[b.series == null_sid] for b in steps}
        assert float(points[t4 - 5]) == float(step_values[t4 - 5][0])
        assert t4 not in points
        assert float(points[t4 + 5]) == float(step_values[t4 + 5][0])


@needs_victoria
def test_victoria_down_then_up_gets_the_queued_samples(
    tmp_path: Path, twin_steps: tuple[SeriesRegistry, list[Batch]]
) -> None:
    registry, steps = twin_steps
    n_samples = sum(map(len, steps))
    port = free_port()

    async def body(bus: MemoryBus, sink: RemoteWriteSink) -> None:
        for step in steps:
            await bus.publish("telemetry.twin", step)
        await until(lambda: sink.n_retries >= 3, 10, "retries while nothing listens")
        assert sink.n_sent == 0 and sink.pending == n_samples
        assert sink.last_error is not None and "Connect" in sink.last_error
        with victoria(tmp_path, port) as base:
            await until(lambda: sink.n_sent == n_samples, 30, "the queue delivered")
            assert exported(export(base)) == expected(registry, steps)

    url = f"http://127.0.0.1:{port}/api/v1/write"
    sink = asyncio.run(with_sink(lambda bus: RemoteWriteSink(bus, registry, url, **FAST), body))
    assert (sink.n_failed, sink.n_dropped) == (0, 0)


@needs_victoria
def test_4xx_is_counted_never_retried(
    tmp_path: Path, twin_steps: tuple[SeriesRegistry, list[Batch]]
) -> None:
    registry, steps = twin_steps
    with victoria(tmp_path, free_port()) as base:

        async def body(bus: MemoryBus, sink: RemoteWriteSink) -> None:
            await bus.publish("telemetry.twin", steps[0])
            await bus.publish("telemetry.twin", steps[1])
            await until(lambda: sink.n_failed == len(steps[0]) + len(steps[1]), 10, "refusals")
            await asyncio.sleep(0.5)  # a retry would show in the meantime

        sink = asyncio.run(
            with_sink(
                lambda bus: RemoteWriteSink(bus, registry, f"{base}/api/v1/wrong", **FAST), body
            )
        )
        assert (sink.n_sent, sink.n_retries, sink.n_dropped, sink.pending) == (0, 0, 0, 0)
        assert sink.last_error is not None and sink.last_error.startswith("HTTP 400")
        assert export(base) == []


def test_queue_is_bounded_and_drops_the_oldest() -> None:
    """Nothing listens: the queue keeps the newest `queue_samples`, the rest is counted; at
    stop, what is left after `drain_seconds` is counted as dropped too."""
    registry = SeriesRegistry()
    ids = registry.intern_many([(f"c01/r01/s{i:02d}", "power_watts") for i in range(10)])
    port = free_port()

    async def body(bus: MemoryBus, sink: RemoteWriteSink) -> None:
        for step in range(50):
            await bus.publish("telemetry.twin", Batch.of([step * 1000] * 10, ids, np.full(10, 1.0)))
            await asyncio.sleep(0)
        await until(lambda: bus.pending == 0 and sink.n_retries >= 1, 10, "the sink to read all")
        # 500 offered: 100 in flight (the first request) + 200 queued, 200 dropped
        assert sink.n_dropped == 200 and sink.pending == 300

    sink = asyncio.run(
        with_sink(
            lambda bus: RemoteWriteSink(
                bus,
                registry,
                f"http://127.0.0.1:{port}/api/v1/write",
                batch_samples=100,
                queue_samples=200,
                drain_seconds=0.3,
                **FAST,
            ),
            body,
        )
    )
    assert sink.n_sent == 0 and sink.n_dropped == 500 and sink.pending == 0


def test_bad_settings_refused() -> None:
    bus, registry = MemoryBus(), SeriesRegistry()
    for kwargs, match in [
        ({"url": "ftp://x/api/v1/write"}, "http"),
        ({"url": "http://x/", "batch_samples": 0}, "batch_samples"),
        ({"url": "http://x/", "batch_samples": 10, "queue_samples": 5}, "queue_samples"),
        ({"url": "http://x/", "flush_seconds": math.inf}, "flush_seconds"),
        ({"url": "http://x/", "headers": {"content-type": "text/plain"}}, "protocol"),
        ({"url": "http://x/", "external_labels": {"rack": "r1"}}, "set by rackwatch"),
    ]:
        with pytest.raises(ValueError, match=match):
            RemoteWriteSink(bus, registry, **kwargs)  # type: ignore[arg-type]


def test_stale_marker_bits_are_prometheus() -> None:
    assert STALE_NAN_BITS == 0x7FF0000000000002


PROMETHEUS = "/usr/bin/prometheus"


@pytest.mark.skipif(
    shutil.which(PROMETHEUS) is None, reason="needs Debian's prometheus (scripts/install)"
)
def test_prometheus_receiver_takes_the_same_requests(
    tmp_path: Path, twin_steps: tuple[SeriesRegistry, list[Batch]]
) -> None:
    """Prometheus' own receiver is the strictest reader of the format (sorted labels, samples
    in order per series): every sample lands, read back raw through a range-vector query."""
    registry, steps = twin_steps
    n_samples = sum(map(len, steps))
    config, port = tmp_path / "prometheus.yml", free_port()
    config.write_text("global: {}\n")
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def body(bus: MemoryBus, sink: RemoteWriteSink) -> None:
            for step in steps:
                await bus.publish("telemetry.twin", step)
            await until(lambda: sink.n_sent == n_samples, 30, "every sample accepted")

        url = f"{base}/api/v1/write"  # refused connections are retried until it is up
        sink = asyncio.run(
            with_sink(
                lambda bus: RemoteWriteSink(bus, registry, url, batch_samples=300, **FAST), body
            )
        )
        assert (sink.n_failed, sink.n_dropped) == (0, 0)
        response = httpx.get(
            f"{base}/api/v1/query",
            params={"query": '{__name__=~"rackwatch_.+"}[10m]', "time": str(time.time())},
            timeout=30,
        ).json()
        got: Points = {}
        for result in response["data"]["result"]:
            labels = result["metric"]
            key = (labels["entity"], labels["__name__"].removeprefix("rackwatch_"))
            got[key] = [(round(t * 1000), float(v)) for t, v in result["values"]]
        want = {
            key: [(ts, v) for ts, v in points if v is not None]  # a stale marker is no sample
            for key, points in expected(registry, steps).items()
        }
        assert got == want
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@needs_victoria
def test_rackwatch_run_sends_every_sample_it_stores(tmp_path: Path) -> None:
    """`[remote_write] url` in `rackwatch run`: the sink is one more consumer of the bus, and
    what the store holds at stop is what VictoriaMetrics holds (drained before return)."""
    from rackwatch import app
    from rackwatch.settings import load_settings
    from rackwatch.store.base import Query

    start_ms = (int(time.time()) - 3600) // 5 * 5000
    with victoria(tmp_path, free_port()) as base:
        settings = load_settings(
            data_dir=tmp_path / "data",
            twin={"scenario": "small", "speed": 600.0},
            host={"enabled": False},
            intelligence={"enabled": False},
            remote_write={"url": f"{base}/api/v1/write", "flush_seconds": 0.2},
        )
        services = app.build_services(settings, start_ms=start_ms)
        assert services.remote_write is not None and services.poller is not None
        poller = services.poller

        async def scenario() -> None:
            stop = asyncio.Event()
            runner = asyncio.create_task(app.run_live(services, stop))
            await until(lambda: poller.steps_done >= 40, 60, "40 twin steps")
            stop.set()
            await runner

        try:
            asyncio.run(scenario())
            stored = services.store.query(Query(start_ms, start_ms + 86_400_000))
            sent = services.remote_write.n_sent
            assert sent == len(stored) == poller.n_samples > 0
            assert services.remote_write.n_failed == services.remote_write.n_dropped == 0
            points = exported(export(base))
            assert sum(len(v) for v in points.values()) == len(stored)
            key = stored.keys[0]
            rows = stored.rows(0)
            got = points[(key.entity, key.metric)]
            assert [t for t, _ in got] == rows["ts"].tolist()
        finally:
            services.close()
