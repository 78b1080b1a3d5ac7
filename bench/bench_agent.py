"""Host collector cost: CPU and wall time per `HostCollector.collect()`, and its memory, against
Prometheus node_exporter scraped on the same machine in the same run.

    python bench/bench_agent.py [--calls 200] [--interval 0.05] [--no-node-exporter]

rackwatch: the collector is created (its CPU baseline taken), collected once (the rates'
baseline), then timed over `--calls` collections `--interval` seconds apart: CPU time
(`time.process_time`, this process only) and wall time of each call, median and p95; the
process's resident memory (Python, NumPy and psutil included) before the collector was
created and after the run; and the time of one `inventory()`.

node_exporter: when `/usr/bin/prometheus-node-exporter` exists (Debian/Ubuntu:
`apt-get install prometheus-node-exporter`), it is started here on a free 127.0.0.1 port with
its default collectors (never as a service) and stopped at the end; each iteration scrapes
`/metrics` once right after the collection, so both see the same machine at the same time.
Its CPU per scrape is the growth of utime + stime in `/proc/<pid>/stat` (all its threads,
clock ticks) over the scrapes, divided by their number (its idle work between scrapes is
included, which is part of its cost); its RSS is `VmRSS` from `/proc/<pid>/status`. Wall
time per scrape is as this client saw it (request to last byte).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

from rackwatch.sources.host.system import HostCollector

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:7.3f} ms   p95 {p95(values) * 1e3:7.3f} ms"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, all threads, in clock ticks (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of the whole line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    url: str
    walls: list[float] = field(default_factory=list)
    size: int = 0
    samples: int = 0

    def scrape(self) -> None:
        began = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=10) as answer:
            body: bytes = answer.read()
        self.walls.append(time.perf_counter() - began)
        self.size = len(body)
        self.samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


@contextlib.contextmanager
def node_exporter() -> Iterator[Exporter | None]:
    if not os.path.exists(NODE_EXPORTER):
        print(
            f"{NODE_EXPORTER} not found: `apt-get install prometheus-node-exporter` "
            "(Debian/Ubuntu) to compare with it; measuring rackwatch only"
        )
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        exporter = Exporter(process, f"http://127.0.0.1:{port}/metrics")
        deadline = time.monotonic() + 15
        while True:
            try:
                exporter.scrape()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"node_exporter did not start on port {port}") from None
                time.sleep(0.1)
        exporter.walls.clear()
        yield exporter
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between calls")
    parser.add_argument("--no-node-exporter", action="store_true")
    args = parser.parse_args()
    me = os.getpid()
    print(
        f"python {sys.version.split()[0]}, psutil {psutil.__version__}, "
        f"{psutil.cpu_count()} logical cores, {args.calls} calls {args.interval} s apart"
    )
    rss_before = rss_mib(me)
    collector = HostCollector()
    began = time.process_time()
    inventory = collector.inventory()
    inventory_cpu = time.process_time() - began
    time.sleep(args.interval)
    collector.collect()  # the rates' baseline
    exporters = contextlib.nullcontext(None) if args.no_node_exporter else node_exporter()
    cpu: list[float] = []
    wall: list[float] = []
    n_readings: list[int] = []
    with exporters as exporter:
        ticks_before = cpu_ticks(exporter.process.pid) if exporter else 0
        for _ in range(args.calls):
            time.sleep(args.interval)
            cpu_began, wall_began = time.process_time(), time.perf_counter()
            readings = collector.collect()
            wall.append(time.perf_counter() - wall_began)
            cpu.append(time.process_time() - cpu_began)
            n_readings.append(len(readings))
            if exporter:
                exporter.scrape()
        ticks = cpu_ticks(exporter.process.pid) - ticks_before if exporter else 0
        exporter_rss = rss_mib(exporter.process.pid) if exporter else 0.0
    print(
        f"rackwatch HostCollector: {statistics.median(n_readings):.0f} readings per call "
        f"({len(inventory)} inventory items), {collector.n_errors} errors"
    )
    print(f"  CPU per collect()   {ms(cpu)}   mean {statistics.fmean(cpu) * 1e3:7.3f} ms")
    print(f"  wall per collect()  {ms(wall)}")
    print(f"  inventory()         {inventory_cpu * 1e3:7.3f} ms CPU, once")
    print(
        f"  process RSS         {rss_mib(me):7.1f} MiB after the run "
        f"({rss_before:.1f} MiB before the collector: Python, NumPy, psutil)"
    )
    if exporter:
        version = subprocess.run(
            [NODE_EXPORTER, "--version"], capture_output=True, text=True, check=False
        )
        name = (version.stdout or version.stderr).split("\n", 1)[0]
        print(f"{name}, default collectors: {exporter.samples} samples, {exporter.size:,} B")
        print(
            f"  CPU per scrape      mean {ticks / TICKS_PER_S / args.calls * 1e3:7.3f} ms "
            f"({ticks} ticks of {1e3 / TICKS_PER_S:.0f} ms over {args.calls} scrapes)"
        )
        print(f"  wall per scrape     {ms(exporter.walls)}")
        print(f"  process RSS         {exporter_rss:7.1f} MiB")


if __name__ == "__main__":
    main()
