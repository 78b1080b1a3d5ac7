"""Seed 002's application signals derived by the scrape loop (`rackwatch.sources.scrape_loop`):
a Spring-Boot-like exposition served by a real HTTP server on a free loopback port, scraped
scrape after scrape, and the `app_*` gauges published with each scrape's batch."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rackwatch.bus import MemoryBus
from rackwatch.engine.health import app_metrics_from_prometheus
from rackwatch.engine.intelligence import Role, role_of
from rackwatch.model import METRICS, Batch, MetricKind, SeriesRegistry
from rackwatch.sources.readings import Reading
from rackwatch.sources.scrape import APP_INPUTS, Scraper, ScrapeTarget, parse_exposition
from rackwatch.sources.scrape_loop import (
    APP_SIGNAL_METRICS,
    CPU_USAGE,
    MEMORY_MAX,
    MEMORY_USED,
    REQUEST_COUNT,
    REQUEST_SECONDS,
    AppSignalTracker,
    ScrapeLoop,
    app_signals,
)

START_MS = 1_767_225_600_000
APP = "app/forms"
GAUGES = set(APP_SIGNAL_METRICS.values())

# --- a Spring Boot actuator (Micrometer), its counters moved by each scrape -----------------

_POST = 'exception="None",method="POST",outcome="SUCCESS",status="201",uri="/forms",'
_GET = 'exception="None",method="GET",outcome="SUCCESS",status="201",uri="/forms",'
_MISS = 'exception="None",method="GET",outcome="CLIENT_ERROR",status="404",uri="/**",'


def spring_boot(
    cpu: float,
    requests: Sequence[tuple[float, float]],
    used: Sequence[float] = (4194304.0, 3.145728e7, 6.291456e7, 2.5165824e7),
    limits: Sequence[float] = (-1.0, 4.164943872e9, -1.0, -1.0),
) -> bytes:
    """The actuator's answer; `requests`: (count, sum) of POST, GET and the 404s."""
    pools = (
        'area="heap",id="G1 Survivor Space",',
        'area="heap",id="G1 Old Gen",',
        'area="nonheap",id="Metaspace",',
        'area="heap",id="G1 Eden Space",',
    )
    lines = [
        "# HELP process_cpu_usage The recent cpu usage for the Java Virtual Machine process",
        "# TYPE process_cpu_usage gauge",
        f"process_cpu_usage {cpu!r}",
        "# HELP system_cpu_usage The recent cpu usage of the system",
        "# TYPE system_cpu_usage gauge",
        "system_cpu_usage 0.4375",
        "# HELP jvm_memory_used_bytes The amount of used memory",
        "# TYPE jvm_memory_used_bytes gauge",
        *(f"jvm_memory_used_bytes{{{p}}} {v!r}" for p, v in zip(pools, used, strict=True)),
        "# HELP jvm_memory_max_bytes The maximum amount of memory in bytes that can be used",
        "# TYPE jvm_memory_max_bytes gauge",
        *(f"jvm_memory_max_bytes{{{p}}} {v!r}" for p, v in zip(pools, limits, strict=True)),
        "# HELP http_server_requests_seconds",
        "# TYPE http_server_requests_seconds summary",
    ]
    for labels, (count, total) in zip((_POST, _GET, _MISS), requests, strict=True):
        lines.append(f"http_server_requests_seconds_count{{{labels}}} {count!r}")
        lines.append(f"http_server_requests_seconds_sum{{{labels}}} {total!r}")
    return ("\n".join(lines) + "\n").encode()


NODE_EXPORTER = b"""\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.5
node_cpu_seconds_total{cpu="0",mode="user"} 321.25
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 8.123456e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.52
"""


class Exporter(ThreadingHTTPServer):
    """Serves `body` at any path; the test changes it between scrapes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/actuator/prometheus"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: Exporter

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    server = Exporter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class SteppedScraper(Scraper):
    """A scraper whose scrapes are stamped every 5 s from START_MS (the wall clock would make
    the interval between two quick scrapes a few milliseconds)."""

    def __init__(self, target: ScrapeTarget) -> None:
        super().__init__(target)
        self.n_stamped = 0

    async def scrape(self) -> list[Reading]:
        readings = await super().scrape()
        self.last_ts_ms = START_MS + 5000 * self.n_stamped
        self.n_stamped += 1
        return readings


def scrape_series(
    exporter: Exporter, bodies: Sequence[bytes], **target_kw: object
) -> tuple[list[dict[tuple[str, str], float]], list[int], list[int]]:
    """Each body served and scraped once by a ScrapeLoop on a memory bus: per scrape, the
    published batch as {(entity, metric): value}, its instant, and scrape_once's count."""
    registry = SeriesRegistry()
    target = ScrapeTarget(url=exporter.url, name=APP, **target_kw)  # type: ignore[arg-type]

    async def main() -> tuple[list[Batch], list[int]]:
        bus = MemoryBus()
        counts = []
        async with bus.subscribe("telemetry.>") as sub:
            loop = ScrapeLoop(SteppedScraper(target), registry, bus)
            for body in bodies:
                exporter.body = body
                counts.append(await loop.scrape_once())
            bus.close()
            published = [batch async for subject, batch in sub if subject == "telemetry.scrape"]
            await loop.scraper.aclose()
        return published, counts  # type: ignore[return-value]

    batches, counts = asyncio.run(main())
    assert len(batches) == len(bodies)
    tables = []
    instants = []
    for batch in batches:
        keys = [registry.key(int(s)) for s in batch.series]
        table = {(k.entity, k.metric): float(v) for k, v in zip(keys, batch.value, strict=True)}
        assert len(table) == len(batch), "one sample per series"
        (ts,) = set(batch.ts.tolist())  # one instant: the derived samples are the scrape's
        tables.append(table)
        instants.append(int(ts))
    return tables, instants, counts


def app_gauges(table: dict[tuple[str, str], float]) -> dict[str, float]:
    found = {metric: v for (entity, metric), v in table.items() if metric in GAUGES}
    assert all(entity == APP for entity, metric in table if metric in GAUGES)
    return found


USED = 4194304.0 + 3.145728e7 + 6.291456e7 + 2.5165824e7
LIMIT = 4.164943872e9 - 3.0  # Micrometer's -1 ("no max") summed in, as Prometheus' sum()


# --- against a real HTTP exposition ----------------------------------------------------------


def test_spring_boot_scrapes_give_seed_002_signals_on_the_targets_entity(
    exporter: Exporter,
) -> None:
    first = spring_boot(0.0734, [(1532.0, 412.8), (100.0, 10.0), (7.0, 0.05)])
    # 5 s later: 150 more POSTs (45 s), 50 more GETs (5 s), 0 more 404s
    second = spring_boot(0.62, [(1682.0, 457.8), (150.0, 15.0), (7.0, 0.05)])
    tables, instants, counts = scrape_series(exporter, [first, second])
    assert instants == [START_MS, START_MS + 5000]

    # the first scrape: the usages, no rate yet (no earlier scrape)
    assert app_gauges(tables[0]) == {
        "app_cpu_usage_ratio": 0.0734,
        "app_jvm_memory_usage_ratio": pytest.approx(USED / LIMIT),
    }
    exposed = {k for k in tables[0] if k[1] not in GAUGES}
    assert counts[0] == len(exposed) + 2
    assert tables[0][(APP, "process_cpu_usage")] == 0.0734  # the exposition is kept as it was

    # the second: 200 requests in 5 s, 50 s of answers among them
    assert app_gauges(tables[1]) == {
        "app_cpu_usage_ratio": 0.62,
        "app_jvm_memory_usage_ratio": pytest.approx(USED / LIMIT),
        "app_request_rate_per_second": pytest.approx(200 / 5.0),
        "app_response_time_seconds": pytest.approx(50.0 / 200),
    }
    assert counts[1] == len(exposed) + 4
    # and seed 002's classes of those values
    m = app_metrics_from_prometheus(
        {"process_cpu_usage": 0.62, "http_server_requests_seconds_count": 1839.0},
        {"http_server_requests_seconds_count": 1639.0},
        5.0,
    )
    assert m.request_count == pytest.approx(40.0)
    assert {k: str(c) for k, c in m.criticity().items()} == {
        "cpu_usage": "high",
        "request_count": "high",
    }


def test_the_sums_take_every_label_set_even_those_that_collide(exporter: Exporter) -> None:
    """entity_labels = [uri, status] puts POST and GET /forms on one entity: the stored series
    keeps the first, the request rate still counts both (Prometheus' sum())."""
    first = spring_boot(0.1, [(1000.0, 100.0), (100.0, 10.0), (7.0, 0.05)])
    second = spring_boot(0.1, [(1010.0, 101.0), (130.0, 13.0), (7.0, 0.05)])
    tables, _instants, _counts = scrape_series(
        exporter, [first, second], entity_labels=("uri", "status")
    )
    forms = (f"{APP}/uri-forms/status-201", "http_server_requests_seconds_count")
    assert tables[1][forms] == 1010.0  # the POSTs only
    gauges = app_gauges(tables[1])
    assert gauges["app_request_rate_per_second"] == pytest.approx(40 / 5.0)
    assert gauges["app_response_time_seconds"] == pytest.approx(4.0 / 40)


def test_a_counter_reset_gives_no_rate_and_the_next_scrape_one_again(exporter: Exporter) -> None:
    before = spring_boot(0.3, [(5000.0, 900.0), (100.0, 10.0), (7.0, 0.05)])
    restarted = spring_boot(0.9, [(12.0, 3.0), (0.0, 0.0), (0.0, 0.0)])  # the JVM restarted
    after = spring_boot(0.5, [(72.0, 9.0), (0.0, 0.0), (0.0, 0.0)])
    idle = after  # no request in 5 s
    tables, _instants, _counts = scrape_series(exporter, [before, restarted, after, idle])
    reset = app_gauges(tables[1])
    assert set(reset) == {"app_cpu_usage_ratio", "app_jvm_memory_usage_ratio"}
    assert reset["app_cpu_usage_ratio"] == 0.9
    again = app_gauges(tables[2])
    assert again["app_request_rate_per_second"] == pytest.approx(60 / 5.0)
    assert again["app_response_time_seconds"] == pytest.approx(6.0 / 60)
    quiet = app_gauges(tables[3])  # a rate of 0, and no response time (no request to time)
    assert quiet["app_request_rate_per_second"] == 0.0
    assert "app_response_time_seconds" not in quiet


def test_bad_values_give_no_sample(exporter: Exporter) -> None:
    # Micrometer's -1 for a CPU load the JVM cannot read; no pool with a max; NaN memory
    no_cpu = spring_boot(-1.0, [(10.0, 1.0), (0.0, 0.0), (0.0, 0.0)], limits=(-1.0,) * 4)
    nan = spring_boot(
        math.nan, [(20.0, 2.0), (0.0, 0.0), (0.0, 0.0)], used=(math.nan, 1.0, 1.0, 1.0)
    )
    tables, _instants, _counts = scrape_series(exporter, [no_cpu, nan])
    assert app_gauges(tables[0]) == {}
    assert tables[0][(APP, "process_cpu_usage")] == -1.0  # stored as exposed
    assert app_gauges(tables[1]) == {
        "app_request_rate_per_second": pytest.approx(2.0),
        "app_response_time_seconds": pytest.approx(0.1),
    }


def test_a_node_exporter_target_gets_nothing_more(exporter: Exporter) -> None:
    tables, _instants, counts = scrape_series(exporter, [NODE_EXPORTER, NODE_EXPORTER])
    for table, count in zip(tables, counts, strict=True):
        assert app_gauges(table) == {} and count == len(table) == 4


def test_an_exposed_series_of_the_same_name_wins(exporter: Exporter) -> None:
    body = spring_boot(0.25, [(1.0, 0.1), (0.0, 0.0), (0.0, 0.0)]) + b"app_cpu_usage_ratio 0.5\n"
    tables, _instants, _counts = scrape_series(exporter, [body])
    assert tables[0][(APP, "app_cpu_usage_ratio")] == 0.5


# --- the pure parts ---------------------------------------------------------------------------


def test_the_tracker_rates_over_the_interval_between_scrapes() -> None:
    tracker = AppSignalTracker("app/a")
    count, seconds = REQUEST_COUNT[1], REQUEST_SECONDS[1]  # the parser's `_total` names
    assert tracker.update({count: [10.0], seconds: [1.0]}, START_MS) == []
    found = tracker.update({count: [40.0, 10.0], seconds: [4.0, 2.0]}, START_MS + 15_000)
    assert found == [
        Reading("app/a", "app_request_rate_per_second", 40 / 15.0),
        Reading("app/a", "app_response_time_seconds", 5.0 / 40),
    ]
    assert tracker.update({}, START_MS + 20_000) == []  # it stopped exposing them
    assert tracker.update({count: [60.0]}, START_MS + 25_000) == []  # no scrape to rate from
    same_instant = tracker.update({count: [70.0]}, START_MS + 25_000)
    assert same_instant == []  # a zero interval gives no rate


def test_app_signals_and_the_health_agree() -> None:
    now = {CPU_USAGE: 0.8, MEMORY_USED: [200.0, 100.0], MEMORY_MAX: [400.0, 200.0]}
    signals = app_signals(now, now, 5.0)
    m = app_metrics_from_prometheus(now, now, 5.0)
    assert signals == {"cpu_usage": 0.8, "jvm_memory_usage": 0.5}
    assert (m.cpu_usage, m.jvm_memory_usage, m.request_count) == (0.8, 0.5, None)
    assert app_signals({CPU_USAGE: math.inf}) == {}
    assert app_metrics_from_prometheus({CPU_USAGE: -1.0}).cpu_usage is None


def test_the_parser_keeps_every_input_the_loop_reads() -> None:
    assert {CPU_USAGE, MEMORY_USED, MEMORY_MAX, *REQUEST_COUNT, *REQUEST_SECONDS} == APP_INPUTS
    body = (
        "# TYPE http_server_requests_seconds_count counter\n"
        'http_server_requests_seconds_count{uri="/a"} 3\n'
        'http_server_requests_seconds_count{uri="/b"} 4\n'
    )
    result = parse_exposition(body, ScrapeTarget(url="http://x/metrics", name=APP, max_series=1))
    assert result.app_inputs == {"http_server_requests_seconds_count_total": [3.0, 4.0]}
    assert result.n_dropped_series == 1  # the second is not stored, but it is summed


def test_the_app_gauges_are_catalogued_and_scored() -> None:
    for metric in APP_SIGNAL_METRICS.values():
        assert METRICS[metric].kind is MetricKind.GAUGE
        assert role_of(metric) is Role.SCORED
