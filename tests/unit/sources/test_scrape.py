"""Scraping Prometheus text endpoints (`rackwatch.sources.scrape`): fixed expositions served by a
real HTTP server on a free loopback port (and one httpx.MockTransport), mapped into readings."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from rackwatch.errors import SourceError, SourceTimeout
from rackwatch.model.entity import validate
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.readings import Reading, to_batch
from rackwatch.sources.scrape import (
    ScrapeError,
    Scraper,
    ScrapeTarget,
    ScrapeTimeout,
    metric_name,
    parse_exposition,
)

# --- expositions ----------------------------------------------------------------------------

# Seed 002's application metrics as a Spring Boot 2 actuator (Micrometer) exposes them at
# /actuator/prometheus: the trailing comma in label sets, `-1.0` for an unbounded pool, the
# request timer as a summary (`_count`, `_sum`) plus a separate `_max` gauge.
_POST = 'exception="None",method="POST",outcome="SUCCESS",status="201",uri="/forms",'
_MISS = 'exception="None",method="GET",outcome="CLIENT_ERROR",status="404",uri="/**",'
SPRING_BOOT = f"""\
# HELP system_cpu_usage The "recent cpu usage" for the whole system
# TYPE system_cpu_usage gauge
system_cpu_usage 0.4375
# HELP process_cpu_usage The "recent cpu usage" for the Java Virtual Machine process
# TYPE process_cpu_usage gauge
process_cpu_usage 0.0734
# HELP disk_free_bytes Usable space for path
# TYPE disk_free_bytes gauge
disk_free_bytes{{path="/app/.",}} 5.2123648E10
# HELP disk_total_bytes Total space for path
# TYPE disk_total_bytes gauge
disk_total_bytes{{path="/app/.",}} 6.2725623808E10
# HELP jvm_memory_used_bytes The amount of used memory
# TYPE jvm_memory_used_bytes gauge
jvm_memory_used_bytes{{area="heap",id="G1 Survivor Space",}} 4194304.0
jvm_memory_used_bytes{{area="heap",id="G1 Old Gen",}} 3.1457280E7
jvm_memory_used_bytes{{area="nonheap",id="Metaspace",}} 6.2914560E7
jvm_memory_used_bytes{{area="heap",id="G1 Eden Space",}} 2.5165824E7
# HELP jvm_memory_max_bytes The maximum amount of memory in bytes that can be used
# TYPE jvm_memory_max_bytes gauge
jvm_memory_max_bytes{{area="heap",id="G1 Survivor Space",}} -1.0
jvm_memory_max_bytes{{area="heap",id="G1 Old Gen",}} 4.164943872E9
jvm_memory_max_bytes{{area="nonheap",id="Metaspace",}} -1.0
jvm_memory_max_bytes{{area="heap",id="G1 Eden Space",}} -1.0
# HELP http_server_requests_seconds
# TYPE http_server_requests_seconds summary
http_server_requests_seconds_count{{{_POST}}} 1532.0
http_server_requests_seconds_sum{{{_POST}}} 412.800192
http_server_requests_seconds_count{{{_MISS}}} 7.0
http_server_requests_seconds_sum{{{_MISS}}} 0.0512
# HELP http_server_requests_seconds_max
# TYPE http_server_requests_seconds_max gauge
http_server_requests_seconds_max{{{_POST}}} 0.923
http_server_requests_seconds_max{{{_MISS}}} 0.0
# HELP hikaricp_connections_active Active connections
# TYPE hikaricp_connections_active gauge
hikaricp_connections_active{{pool="HikariPool-1",}} 3.0
""".encode()

# The shape of dcgm-exporter's answer (the labels of its published examples), on an H100 node;
# the exporter leaves the Kubernetes labels empty outside a pod.
_GPU0 = (
    'gpu="0",UUID="GPU-5fd3ef2a-9d1c-6a77-3c0b-1d8f0ac2e7b4",device="nvidia0",'
    'modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",container="",namespace="",pod=""'
)
_GPU1 = (
    'gpu="1",UUID="GPU-0b8e2c41-77a0-d8f5-91e6-4c2a9d3f6b10",device="nvidia1",'
    'modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-07",container="",namespace="",pod=""'
)
DCGM = f"""\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{{{_GPU0}}} 87
DCGM_FI_DEV_GPU_UTIL{{{_GPU1}}} 0
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{{{_GPU0}}} 61
DCGM_FI_DEV_GPU_TEMP{{{_GPU1}}} 33
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{{{_GPU0}}} 612.452000
DCGM_FI_DEV_POWER_USAGE{{{_GPU1}}} 71.104000
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{{_GPU0}}} 78211
DCGM_FI_DEV_FB_USED{{{_GPU1}}} 0
""".encode()

HISTOGRAM = b"""\
# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",le="0.1"} 120
http_request_duration_seconds_bucket{method="GET",le="0.5"} 180
http_request_duration_seconds_bucket{method="GET",le="+Inf"} 200
http_request_duration_seconds_count{method="GET"} 200
http_request_duration_seconds_sum{method="GET"} 31.5
# HELP rpc_duration_seconds RPC latency.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{service="auth",quantile="0.5"} 0.012
rpc_duration_seconds{service="auth",quantile="0.99"} 0.2
rpc_duration_seconds_count{service="auth"} 900
rpc_duration_seconds_sum{service="auth"} 14.1
"""

# --- a real HTTP server on a free loopback port ----------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    length: bool = True  # announce Content-Length (else the body ends when the server closes)
    delay_s: float = 0.0  # before the status line
    drip_s: float | None = None  # send the body a byte at a time, this far apart
    requests: list[dict[str, str]] = field(default_factory=list)


class Exporter(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.stop = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def serve(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, close-delimited bodies allowed
    server: Exporter

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route.requests.append(dict(self.headers.items()))
        if route.delay_s and self.server.stop.wait(route.delay_s):
            return
        try:
            self.send_response(route.status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            if route.length and route.drip_s is None:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            if route.drip_s is None:
                self.wfile.write(route.body)
                return
            for byte in route.body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.server.stop.wait(route.drip_s):
                    return
        except OSError:  # the scraper hung up (a timeout, the byte cap)
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    server = Exporter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def scrape_once(target: ScrapeTarget) -> tuple[list[Reading], Scraper]:
    async def main() -> tuple[list[Reading], Scraper]:
        async with Scraper(target) as scraper:
            return await scraper.scrape(), scraper

    return asyncio.run(main())


def failed_scrape(target: ScrapeTarget) -> tuple[ScrapeError, Scraper]:
    async def main() -> tuple[ScrapeError, Scraper]:
        async with Scraper(target) as scraper:
            with pytest.raises(ScrapeError) as caught:
                await scraper.scrape()
            return caught.value, scraper

    return asyncio.run(main())


def by_key(readings: list[Reading]) -> dict[tuple[str, str], float]:
    table = {(r.entity, r.metric): r.value for r in readings}
    assert len(table) == len(readings), "one reading per (entity, metric)"
    return table


# --- the mapping -----------------------------------------------------------------------------


def test_spring_boot_actuator_metrics_of_seed_002(exporter: Exporter) -> None:
    url = exporter.serve("/actuator/prometheus", Route(SPRING_BOOT))
    target = ScrapeTarget(url=url, name="app/forms")
    readings, scraper = scrape_once(target)
    got = by_key(readings)
    assert got[("app/forms", "process_cpu_usage")] == 0.0734
    assert got[("app/forms", "system_cpu_usage")] == 0.4375
    assert got[("app/forms/path-app_.", "disk_free_bytes")] == 5.2123648e10
    heap = "app/forms/area-heap/id-G1_Eden_Space"
    assert got[(heap, "jvm_memory_used_bytes")] == 2.5165824e7
    assert got[(heap, "jvm_memory_max_bytes")] == -1.0
    assert got[("app/forms/area-nonheap/id-Metaspace", "jvm_memory_used_bytes")] == 6.291456e7
    ok = "app/forms/exception-None/method-POST/outcome-SUCCESS/status-201/uri-forms"
    assert got[(ok, "http_server_requests_seconds_count")] == 1532
    assert got[(ok, "http_server_requests_seconds_sum")] == 412.800192
    assert got[(ok, "http_server_requests_seconds_max")] == 0.923
    missed = "app/forms/exception-None/method-GET/outcome-CLIENT_ERROR/status-404/uri-unnamed"
    assert got[(missed, "http_server_requests_seconds_count")] == 7  # uri "/**": nothing left
    assert got[("app/forms/pool-HikariPool-1", "hikaricp_connections_active")] == 3
    assert len(readings) == 19 and all(validate(r.entity) for r in readings)
    assert (scraper.n_ok, scraper.n_failed, scraper.last_error) == (1, 0, None)
    assert scraper.last is not None and scraper.last.n_samples == 19
    assert scraper.last_ts_ms is not None and abs(scraper.last_ts_ms - time.time() * 1000) < 60e3
    request = exporter.routes["/actuator/prometheus"].requests[0]
    assert request["Accept"].startswith("text/plain;version=0.0.4")
    assert request["X-Prometheus-Scrape-Timeout-Seconds"] == "5"
    (item,) = scraper.inventory()
    assert item["entity"] == "app/forms" and item["kind"] == "scrape_target"
    assert (item["url"], item["interval_s"], item["last_error"]) == (url, 5.0, None)
    assert item["n_series"] == 19


def test_seed_002_labels_narrowed_to_those_the_users_chart(exporter: Exporter) -> None:
    """entity_labels picks the labels (in their order); samples that then coincide are
    collisions: the first stays."""
    url = exporter.serve("/actuator/narrow", Route(SPRING_BOOT))
    target = ScrapeTarget(url=url, name="app/forms", entity_labels=("area", "status", "method"))
    readings, scraper = scrape_once(target)
    got = by_key(readings)
    assert got[("app/forms/area-heap", "jvm_memory_used_bytes")] == 4194304.0  # the first heap
    assert ("app/forms/area-nonheap", "jvm_memory_used_bytes") in got
    assert got[("app/forms/status-201/method-POST", "http_server_requests_seconds_count")] == 1532
    assert got[("app/forms", "disk_free_bytes")] == 5.2123648e10  # `path` is not listed
    assert scraper.last is not None and scraper.last.n_collisions == 4  # 2 heap ids x 2 metrics
    assert scraper.n_collisions == 4 and len(readings) == 19 - 4


def test_dcgm_exporter_gpus(exporter: Exporter) -> None:
    url = exporter.serve("/dcgm", Route(DCGM))
    readings, _ = scrape_once(ScrapeTarget(url=url, name="dcgm"))
    got = by_key(readings)
    gpu0 = (
        "dcgm/Hostname-gpu-node-07/UUID-GPU-5fd3ef2a-9d1c-6a77-3c0b-1d8f0ac2e7b4/device-nvidia0"
        "/gpu-0/modelName-NVIDIA_H100_80GB_HBM3"
    )
    assert got[(gpu0, "dcgm_fi_dev_gpu_util")] == 87
    assert got[(gpu0, "dcgm_fi_dev_power_usage")] == 612.452
    assert not any("pod" in r.entity or "namespace" in r.entity for r in readings)  # empty
    assert len(readings) == 8

    per_gpu = ScrapeTarget(url=url, name="host/gpu-node-07", entity_labels=("gpu",))
    got = by_key(scrape_once(per_gpu)[0])
    assert got[("host/gpu-node-07/gpu-1", "dcgm_fi_dev_fb_used")] == 0
    assert got[("host/gpu-node-07/gpu-0", "dcgm_fi_dev_gpu_temp")] == 61
    assert {e for e, _ in got} == {"host/gpu-node-07/gpu-0", "host/gpu-node-07/gpu-1"}


def test_histogram_buckets_and_quantiles_sit_under_their_count_and_sum(
    exporter: Exporter,
) -> None:
    url = exporter.serve("/histogram", Route(HISTOGRAM))
    got = by_key(scrape_once(ScrapeTarget(url=url, name="app/api"))[0])
    get = "app/api/method-GET"
    assert got[(f"{get}/le-0.1", "http_request_duration_seconds_bucket")] == 120
    assert got[(f"{get}/le-Inf", "http_request_duration_seconds_bucket")] == 200  # le last
    assert got[(get, "http_request_duration_seconds_count")] == 200
    assert got[(get, "http_request_duration_seconds_sum")] == 31.5
    assert got[("app/api/service-auth/quantile-0.99", "rpc_duration_seconds")] == 0.2
    assert got[("app/api/service-auth", "rpc_duration_seconds_count")] == 900
    assert len(got) == 9
    # listed labels keep their order, and le/quantile still come last
    listed = ScrapeTarget(url=url, name="app/api", entity_labels=("service", "method"))
    assert ("app/api/method-GET/le-0.5", "http_request_duration_seconds_bucket") in by_key(
        scrape_once(listed)[0]
    )


def test_nan_is_kept_and_infinities_are_skipped_and_counted(exporter: Exporter) -> None:
    body = b"""\
app_queue_depth NaN
app_latency_seconds{path="a"} +Inf
app_latency_seconds{path="b"} -Inf
app_latency_seconds{path="c"} 0.25
"""
    url = exporter.serve("/nan", Route(body))
    readings, scraper = scrape_once(ScrapeTarget(url=url, name="app/q"))
    got = by_key(readings)
    assert set(got) == {("app/q", "app_queue_depth"), ("app/q/path-c", "app_latency_seconds")}
    assert math.isnan(got[("app/q", "app_queue_depth")])
    assert scraper.n_infinite == 2
    batch = to_batch(readings, SeriesRegistry(), 1_000)
    assert len(batch) == 2 and math.isnan(batch.value[0])


def test_collisions_keep_the_first_sample(exporter: Exporter) -> None:
    body = b"""\
app_hits_total{uri="/a/b"} 1
app_hits_total{uri="/a_b"} 2
app_hits_total{uri="a.b"} 3
app_up 1
app_up 0
"""
    url = exporter.serve("/collide", Route(body))
    readings, scraper = scrape_once(ScrapeTarget(url=url, name="app/c"))
    assert by_key(readings) == {
        ("app/c/uri-a_b", "app_hits_total"): 1,
        ("app/c/uri-a.b", "app_hits_total"): 3,
        ("app/c", "app_up"): 1,
    }
    assert scraper.n_collisions == 2


def test_the_series_cap_keeps_the_first_series_seen(exporter: Exporter) -> None:
    first = b"".join(b'm{i="%d"} %d\n' % (i, i) for i in range(5))
    route = exporter.routes["/cap"] = Route(first)
    target = ScrapeTarget(url=exporter.url("/cap"), name="app/cap", max_series=3)

    async def main() -> list[list[Reading]]:
        async with Scraper(target) as scraper:
            runs = [await scraper.scrape()]
            assert scraper.n_dropped_series == 2 and scraper.n_series == 3
            route.body = b"garbage here\n" + b'm{i="9"} 9\n'  # refused: takes no place
            with pytest.raises(ScrapeError):
                await scraper.scrape()
            route.body = b"".join(b'm{i="%d"} %d\n' % (i, i) for i in (9, 4, 2, 1, 0))
            runs.append(await scraper.scrape())
            assert scraper.n_dropped_series == 4 and scraper.n_series == 3
            assert scraper.inventory()[0]["n_dropped_series"] == 4
            return runs

    first_run, second_run = asyncio.run(main())
    assert [r.entity for r in first_run] == ["app/cap/i-0", "app/cap/i-1", "app/cap/i-2"]
    assert [r.entity for r in second_run] == ["app/cap/i-2", "app/cap/i-1", "app/cap/i-0"]


def test_timestamps_in_the_exposition_are_ignored(exporter: Exporter) -> None:
    url = exporter.serve("/stamped", Route(b"old_gauge 4 1000000000000\n"))
    before = time.time_ns() // 1_000_000
    readings, scraper = scrape_once(ScrapeTarget(url=url, name="app/t"))
    assert readings == [Reading("app/t", "old_gauge", 4.0)]
    assert scraper.last_ts_ms is not None and scraper.last_ts_ms >= before  # not 2001's


def test_names_are_sanitised_and_counters_end_in_total(exporter: Exporter) -> None:
    body = b"""\
# TYPE jobs_done counter
jobs_done 5
job:http_requests:rate5m 2.5
{"http.server.active", "k.8s"="x"} 4
{"\xc3\xa9"} 1
"""
    url = exporter.serve("/names", Route(body))
    readings, scraper = scrape_once(ScrapeTarget(url=url, name="app/n"))
    assert by_key(readings) == {
        ("app/n", "jobs_done_total"): 5,  # the official parser's OpenMetrics naming
        ("app/n", "job_http_requests_rate5m"): 2.5,
        ("app/n/k.8s-x", "http_server_active"): 4,
    }
    assert scraper.n_bad_names == 1  # "é": nothing left
    assert metric_name("x" * 201) == "" and metric_name("Node_Load1") == "node_load1"


def test_odd_label_values_become_bounded_valid_segments(exporter: Exporter) -> None:
    huge = "v" * 10_000
    body = (
        f'app_a{{path="/var/lib/docker"}} 1\n'
        f'app_a{{path="/"}} 2\n'
        f'app_a{{path="Zürich €"}} 3\n'
        f'app_a{{path="{huge}"}} 4\n'
        f'app_a{{{"n" * 500}="x"}} 5\n'
        'app_a{path="line\\nbreak \\"quoted\\" back\\\\slash"} 6\n'
    ).encode()
    url = exporter.serve("/odd", Route(body))
    readings, scraper = scrape_once(ScrapeTarget(url=url, name="app/o"))
    entities = [r.entity for r in readings]
    assert entities[:3] == ["app/o/path-var_lib_docker", "app/o/path-root", "app/o/path-Z_rich"]
    assert entities[3] == "app/o/path-" + "v" * 64
    assert entities[4] == "app/o/" + "n" * 64 + "-x"
    assert entities[5] == "app/o/path-line_break_quoted_back_slash"
    assert all(validate(e) for e in entities) and scraper.n_bad_entities == 0


def test_static_labels_win_and_the_exporters_own_is_kept_as_exported(exporter: Exporter) -> None:
    url = exporter.serve("/static", Route(b'app_up{job="exporter-job",zone="a"} 1\n'))
    target = ScrapeTarget(url=url, name="app/s", labels={"job": "orders", "dc": "par1"})
    readings, _ = scrape_once(target)
    assert [r.entity for r in readings] == [
        "app/s/dc-par1/exported_job-exporter-job/job-orders/zone-a"
    ]


def test_a_hundred_thousand_samples_parse_off_the_event_loop(exporter: Exporter) -> None:
    body = b"".join(b'big_series{i="%d",j="x"} %d\n' % (i, i) for i in range(100_000))
    url = exporter.serve("/big", Route(body))
    target = ScrapeTarget(url=url, name="app/big", interval_s=30)

    async def main() -> tuple[list[Reading], float, Scraper]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        async with Scraper(target) as scraper:
            readings = await scraper.scrape()
        done.set()
        await ticker
        return readings, max(gaps), scraper

    readings, worst_gap, scraper = asyncio.run(main())
    assert len(readings) == 10_000 and readings[-1] == Reading(
        "app/big/i-9999/j-x", "big_series", 9999
    )
    assert scraper.n_dropped_series == 90_000 and scraper.last is not None
    assert scraper.last.n_samples == 100_000
    assert worst_gap < 0.5, f"the event loop stalled {worst_gap:.2f} s during the parse"


# --- failures: each a ScrapeError that names the target and what to do ----------------------


def test_a_500_answer_fails_the_scrape_then_recovery_clears_it(exporter: Exporter) -> None:
    route = exporter.routes["/flaky"] = Route(b"collector failed: no such device", status=500)
    target = ScrapeTarget(url=exporter.url("/flaky"), name="app/flaky")

    async def main() -> Scraper:
        async with Scraper(target) as scraper:
            with pytest.raises(ScrapeError) as caught:
                await scraper.scrape()
            message = str(caught.value)
            assert "app/flaky" in message and "HTTP 500" in message
            assert "collector failed" in message and "see its log" in message
            assert scraper.inventory()[0]["last_error"] == message
            assert (scraper.n_ok, scraper.n_failed) == (0, 1)
            route.status, route.body = 200, b"app_up 1\n"
            assert await scraper.scrape() == [Reading("app/flaky", "app_up", 1.0)]
            return scraper

    scraper = asyncio.run(main())
    assert (scraper.n_ok, scraper.n_failed, scraper.last_error) == (1, 1, None)


def test_a_404_says_to_check_the_path(exporter: Exporter) -> None:
    error, _ = failed_scrape(ScrapeTarget(url=exporter.url("/nothing-here"), name="app/x"))
    assert "HTTP 404" in str(error) and "/actuator/prometheus" in str(error)


def test_a_body_over_the_cap_is_refused(exporter: Exporter) -> None:
    body = b"".join(b'app_filler{i="%d"} 1\n' % i for i in range(200))  # ~4 KiB
    announced = exporter.serve("/big-announced", Route(body))
    error, scraper = failed_scrape(ScrapeTarget(url=announced, name="app/b", max_bytes=1024))
    assert "max_bytes (1,024 bytes" in str(error) and "announces" in str(error)
    assert scraper.n_failed == 1
    streamed = exporter.serve("/big-streamed", Route(body, length=False))
    error, _ = failed_scrape(ScrapeTarget(url=streamed, name="app/b", max_bytes=1024))
    assert "cut off after" in str(error) and "raise max_bytes" in str(error)
    # the same body under a cap it fits
    readings, _ = scrape_once(ScrapeTarget(url=streamed, name="app/b", max_bytes=8192))
    assert len(readings) == 200


def test_a_slow_answer_times_out(exporter: Exporter) -> None:
    url = exporter.serve("/slow", Route(b"app_up 1\n", delay_s=3))
    target = ScrapeTarget(url=url, name="app/slow", interval_s=1, timeout_s=0.3)
    started = time.perf_counter()
    error, scraper = failed_scrape(target)
    assert time.perf_counter() - started < 2
    assert isinstance(error, ScrapeTimeout) and isinstance(error, SourceTimeout)
    assert "within 0.3 s" in str(error) and scraper.last_error == str(error)


def test_a_trickling_answer_times_out_on_the_whole_deadline(exporter: Exporter) -> None:
    """Each byte comes well within httpx's per-read timeout; the whole answer does not."""
    url = exporter.serve("/drip", Route(b"app_up 1\n" * 20, drip_s=0.1))
    target = ScrapeTarget(url=url, name="app/drip", interval_s=1, timeout_s=0.5)
    started = time.perf_counter()
    error, _ = failed_scrape(target)
    assert time.perf_counter() - started < 2
    assert isinstance(error, ScrapeTimeout)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"<html><body><h1>Whitelabel Error Page</h1></body></html>\n", 1),
        (b'# TYPE node_load1 gauge\nnode_load1 0.5\nnode_load5{cpu="0\n', 3),  # truncated
        (b"app_up 1\napp_up one\n", 2),
        (b"app_up 1\n# TYPE bad-name gauge\n", 2),
        (b"\x00\x01\x02\xff\xfe binary\n", 1),
        (b'app_up{a="1",a="2"} 1\n', 1),
    ],
)
def test_garbage_gives_a_clear_error_naming_the_line(
    exporter: Exporter, body: bytes, line: int
) -> None:
    url = exporter.serve("/garbage", Route(body))
    error, scraper = failed_scrape(ScrapeTarget(url=url, name="app/g"))
    message = str(error)
    assert message.startswith("scrape app/g (http://127.0.0.1:")
    assert "not the Prometheus text format" in message and f"line {line}:" in message
    assert scraper.n_failed == 1 and scraper.n_series == 0


def test_nothing_listening_is_a_scrape_error() -> None:
    target = ScrapeTarget(url="http://127.0.0.1:9/metrics", name="app/down", timeout_s=2)
    error, _ = failed_scrape(target)
    assert isinstance(error, SourceError) and "exporter is running" in str(error)


def test_credentials_in_the_url_are_never_shown() -> None:
    target = ScrapeTarget(url="http://scraper:s3cret@127.0.0.1:9/metrics", timeout_s=2)
    error, scraper = failed_scrape(target)
    assert "s3cret" not in str(error)
    assert scraper.inventory()[0]["url"] == "http://127.0.0.1:9/metrics"
    assert target.name == "scrape/127.0.0.1_9"


def test_a_shared_client_is_used_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="node_load1 0.75\n")

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            target = ScrapeTarget(url="http://node.lan:9100/metrics")
            async with Scraper(target, client) as scraper:
                assert await scraper.scrape() == [
                    Reading("scrape/node.lan_9100", "node_load1", 0.75)
                ]
            assert not client.is_closed
            assert (await client.get("http://node.lan:9100/metrics")).status_code == 200

    asyncio.run(main())
    assert len(seen) == 2 and seen[0].headers["User-Agent"] == "rackwatch-scraper"


# --- the target ------------------------------------------------------------------------------


def test_target_defaults() -> None:
    target = ScrapeTarget(url="https://gpu1.lan/metrics", interval_s=60)
    assert (target.name, target.timeout_s, target.max_bytes) == (
        "scrape/gpu1.lan_443",
        10.0,
        16 * 1024 * 1024,
    )
    assert ScrapeTarget(url="http://[::1]:9400/metrics").name == "scrape/::1_9400"
    assert ScrapeTarget(url="http://h:1/m", interval_s=2).timeout_s == 2.0


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"url": "ftp://h/metrics"}, "http:// or https://"),
        ({"url": "not a url"}, "http:// or https://"),
        ({"url": "http://h/m", "interval_s": 0.5}, "greater than or equal to 1"),
        ({"url": "http://h/m", "interval_s": 7200}, "less than or equal to 3600"),
        ({"url": "http://h/m", "interval_s": 5, "timeout_s": 6}, "must not exceed interval_s"),
        ({"url": "http://h/m", "name": "app//x"}, "name must be an entity path"),
        ({"url": "http://h/m", "name": "app/*"}, "name must be an entity path"),
        ({"url": "http://h/m", "labels": {"bad-name": "x"}}, "bad label name"),
        ({"url": "http://h/m", "entity_labels": ["gpu", "gpu"]}, "twice"),
        ({"url": "http://h/m", "max_series": 0}, "greater than or equal to 1"),
        ({"url": "http://h/m", "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_targets_are_refused_saying_why(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why.replace("*", r"\*")):
        ScrapeTarget.model_validate(fields)


def test_parse_exposition_alone() -> None:
    target = ScrapeTarget(url="http://h:1/m", name="x")
    result = parse_exposition('a 1\nb{l="v"} 2\n', target)
    assert result.readings == [Reading("x", "a", 1.0), Reading("x/l-v", "b", 2.0)]
    assert result.new_series == {("x", "a"), ("x/l-v", "b")}
    capped = ScrapeTarget(url="http://h:1/m", name="x", max_series=2)
    known = frozenset({("x", "old")})
    capped_result = parse_exposition("a 1\nold 0\nb 2\n", capped, known)
    assert [r.metric for r in capped_result.readings] == ["a", "old"]
    assert capped_result.new_series == {("x", "a")} and capped_result.n_dropped_series == 1
    with pytest.raises(ValueError, match="line 2"):
        parse_exposition("a 1\nb{ 2\n", target)


# ------------------------------------------------------------------ in rackwatch run


def test_a_scrape_loop_publishes_each_scrape_as_one_batch_and_skips_failures(
    exporter: Exporter,
) -> None:
    from rackwatch.bus import MemoryBus
    from rackwatch.sources.scrape_loop import ScrapeLoop

    ok = exporter.serve("/loop-ok", Route(b'jobs_done_total 7\nqueue_depth{queue="a"} 3\n'))
    bad = exporter.serve("/loop-bad", Route(b"oops", status=500))
    registry = SeriesRegistry()

    async def main() -> tuple[list[tuple[str, object]], int, int]:
        bus = MemoryBus()
        published: list[tuple[str, object]] = []
        async with bus.subscribe("telemetry.>") as sub:
            good = ScrapeLoop(Scraper(ScrapeTarget(url=ok, name="app/jobs")), registry, bus)
            failing = ScrapeLoop(Scraper(ScrapeTarget(url=bad, name="app/bad")), registry, bus)
            n_good = await good.scrape_once()
            n_bad = await failing.scrape_once()
            bus.close()
            published = [item async for item in sub]
            await good.scraper.aclose()
            await failing.scraper.aclose()
        return published, n_good, n_bad

    published, n_good, n_bad = asyncio.run(main())
    assert (n_good, n_bad) == (2, 0)
    ((subject, batch),) = published
    assert subject == "telemetry.scrape"
    keys = {registry.key(int(s)) for s in batch.series}  # type: ignore[attr-defined]
    assert keys == {("app/jobs", "jobs_done_total"), ("app/jobs/queue-a", "queue_depth")}
    assert len(set(batch.ts.tolist())) == 1  # type: ignore[attr-defined]  # one instant


def test_scrape_settings_become_targets_and_a_bad_one_is_a_config_error(tmp_path: Path) -> None:
    from rackwatch import app
    from rackwatch.bus import MemoryBus
    from rackwatch.errors import ConfigError
    from rackwatch.settings import load_settings
    from rackwatch.store.duckdb import DuckDBStore

    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path / "store", registry)
    try:
        settings = load_settings(
            data_dir=tmp_path,
            scrape=[
                {"url": "http://127.0.0.1:9100/metrics", "interval_seconds": 15},
                {"url": "http://app:8080/actuator/prometheus", "name": "app/orders"},
            ],
        )
        loops = app.build_scrapes(app.scrape_targets(settings), registry, MemoryBus(), store)
        targets = [(loop.scraper.target.name, loop.scraper.target.interval_s) for loop in loops]
        assert targets == [("scrape/127.0.0.1_9100", 15.0), ("app/orders", 5.0)]
        bad = load_settings(data_dir=tmp_path, scrape=[{"url": "ftp://x/metrics"}])
        with pytest.raises(ConfigError, match="scrape target ftp://x/metrics: scrape an http"):
            app.scrape_targets(bad)
    finally:
        store.close()
