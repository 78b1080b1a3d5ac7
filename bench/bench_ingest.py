"""Agent ingest benchmark: many simulated agents pushing to one `rackwatch run` (issue 9).

    python bench/bench_ingest.py [--agents 1000] [--readings 50] [--interval 5] [--seconds 60]
                                 [--warmup 15] [--jitter-ms 20] [--client-procs 1]
                                 [--scenario very-large] [--no-host]

    e.g. python bench/bench_ingest.py                        # 1,000 agents x 50 = 10,000/s
         python bench/bench_ingest.py --readings 250         # 1,000 agents x 250 = 50,000/s

The server is `rackwatch run --port 0 --data-dir D --scenario S [--no-host]` (the executable
next to this Python) in a fresh data directory, as a user runs it: the twin at speed 1, the
store writer, alerts, fan control and this machine's own host collection on one event loop,
its live summary drawn on a pseudo-terminal. An `ingest` token is created while it runs, as an
admin would (`rackwatch token create --scope ingest`).

The agents are simulated in `--client-procs` processes: agent i is `host/bench-<i>`, with one
kept-alive HTTP/1.1 connection (pre-built requests on raw asyncio streams, so the load
generator stays light), and sends `--readings` readings per collection, named as the host
collector names them (the host-level metrics, `cpu<k>` cores, a disk, a NIC and a sensor per
eight cores), with steady values of a host's magnitudes (below the default alert thresholds,
as most of a fleet is). Like `rackwatch agent`, each collection is stamped with the
interval's instant on the wall clock (:00, :05 ...) and pushed within `--jitter-ms` of it (a
thundering herd every interval, as NTP-synced agents make), one push in flight per agent: a
collection that finds the previous push still in flight goes with the next push, a failed
push is sent again with the next one.

Measured over `--seconds` after a `--warmup` (the first round creates the series): pushes and
samples accepted per second (202 answers), push latency (request written -> 202 read) p50 /
p99 / max, refusals and errors; the server's CPU (utime + stime of the process over the
window, as a share of one core, and per thread group) and RSS; its own counters (GET
/api/v1/status: samples received and written; once it has drained, /metrics: bus drops over
the whole run). Then the server is stopped with SIGINT and its store opened here: every
reading that had a 202 must be stored exactly once. "sustained" needs every offered sample
accepted, no refusal, error or drop, everything stored once, and push p99 below the interval.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import pty
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

INGEST_PATH = "/api/v1/ingest"
DEFAULT_SERIES_LIMIT = 200_000
ISSUE_TARGET = 50_000  # samples/s: issue 9
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

# ------------------------------------------------------------------------------ agents' data

# (metric, typical value): a value moves within ±2 % of a per-host level between 10 % and
# 70 % of it, so ratios stay below the default alert rules' thresholds.
HOST_METRICS = [
    ("cpu_utilization_ratio", 1.0),
    ("cpu_frequency_hertz", 3.5e9),
    ("load_average_1m", 16.0),
    ("load_average_5m", 16.0),
    ("load_average_15m", 16.0),
    ("memory_used_bytes", 6.4e10),
    ("memory_available_bytes", 6.4e10),
    ("memory_utilization_ratio", 1.0),
    ("swap_used_bytes", 1e9),
    ("swap_utilization_ratio", 1.0),
    ("uptime_seconds", 1e7),
    ("process_count", 500),
    ("user_session_count", 10),
]
DISK_METRICS = [
    ("disk_used_bytes", 1e12),
    ("disk_free_bytes", 1e12),
    ("disk_utilization_ratio", 1.0),
    ("disk_read_bytes_per_second", 1e8),
    ("disk_write_bytes_per_second", 1e8),
]
NET_METRICS = [
    ("network_receive_bytes_total", 1e12),
    ("network_transmit_bytes_total", 1e12),
    ("network_receive_bytes_per_second", 1e8),
    ("network_transmit_bytes_per_second", 1e8),
]


def agent_layout(i: int, n: int) -> list[tuple[str, str, float]]:
    """(entity, metric, typical value) of agent i's `n` readings: the host's own metrics, its
    cores, and after every eighth core a disk, a NIC and a temperature sensor."""
    host = f"host/bench-{i}"
    out = [(host, metric, scale) for metric, scale in HOST_METRICS]
    k = 0
    while len(out) < n:
        out.append((f"{host}/cpu{k}", "cpu_utilization_ratio", 1.0))
        if k % 8 == 7:
            j = k // 8
            disk = "disk-root" if j == 0 else f"disk-data{j}"
            out += [(f"{host}/{disk}", metric, scale) for metric, scale in DISK_METRICS]
            out += [(f"{host}/net-eth{j}", metric, scale) for metric, scale in NET_METRICS]
            out.append((f"{host}/sensor-coretemp_Package_id_{j}", "temperature_celsius", 100.0))
        k += 1
    return out[:n]


class Agent:
    """One simulated agent: its readings, a kept-alive connection, one push in flight."""

    def __init__(self, i: int, readings: int, offset_s: float) -> None:
        self.offset_s = offset_s
        self.rnd = random.Random(i)
        self.layout = [
            (entity, metric, scale * self.rnd.uniform(0.1, 0.7))
            for entity, metric, scale in agent_layout(i, readings)
        ]
        self.pending: list[dict[str, Any]] = []
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    def collect(self, ts_ms: int) -> None:
        entities: dict[str, dict[str, float]] = {}
        uniform = self.rnd.uniform
        for entity, metric, level in self.layout:
            entities.setdefault(entity, {})[metric] = level * uniform(0.98, 1.02)
        self.pending.append({"ts_ms": ts_ms, "entities": entities})

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# ------------------------------------------------------------------------------ clients


class Tally:
    """What one client process saw (latencies and counts of pushes in the window; accepted
    readings and failures over the whole run)."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.readings = 0
        self.late = 0  # pushes that carried more than one collection
        self.accepted_total = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.reconnects = 0


async def exchange(agent: Agent, host: str, port: int, request: bytes) -> tuple[str, float]:
    """Send one request on the agent's connection: (status code, ms from written to answer
    read). A connection the server closed while idle is replaced, as httpx's pool does; a
    push it cut short is sent once more on a new one."""
    for attempt in (0, 1):
        if agent.reader is not None and agent.reader.at_eof():
            agent.close()
        if agent.writer is None:
            agent.reader, agent.writer = await asyncio.open_connection(host, port)
            agent.connects += 1
        assert agent.reader is not None and agent.writer is not None
        sent = time.perf_counter()
        agent.writer.write(request)
        try:
            head = await asyncio.wait_for(agent.reader.readuntil(b"\r\n\r\n"), 30.0)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            agent.close()
            if attempt == 0:
                continue
            raise
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await agent.reader.readexactly(length)
        return head[9:12].decode(), (time.perf_counter() - sent) * 1000
    raise AssertionError("unreachable")


async def push_loop(
    agent: Agent,
    host: str,
    port: int,
    token: str,
    t0: float,
    interval: float,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    import orjson

    head = (
        f"POST {INGEST_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "User-Agent: bench-ingest\r\nContent-Length: "
    ).encode()
    k = 0  # the next instant to collect
    while (instant := t0 + k * interval) < window[1]:
        while (now := time.time()) < instant + agent.offset_s:
            await asyncio.sleep(instant + agent.offset_s - now)
        # Every instant passed by now is collected (the agent's collection loop does not
        # wait for its pusher), one batch each, pushed together.
        while (instant := t0 + k * interval) < window[1] and instant + agent.offset_s <= now:
            agent.collect(round(instant * 1000))
            k += 1
        body = orjson.dumps({"batches": agent.pending})
        request = head + str(len(body)).encode() + b"\r\n\r\n" + body
        n_readings = len(agent.pending) * len(agent.layout)
        in_window = window[0] <= t0 + (k - 1) * interval  # the push, by its newest instant
        from_ms, to_ms = window[0] * 1000, window[1] * 1000
        n_in_window = len(agent.layout) * sum(from_ms <= b["ts_ms"] < to_ms for b in agent.pending)
        try:
            code, elapsed_ms = await exchange(agent, host, port, request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            code, elapsed_ms = type(exc).__name__, math.nan
            agent.close()
        if code == "202":
            tally.accepted_total += n_readings
            tally.readings += n_in_window  # the readings of the window's instants
            if in_window:
                tally.latencies_ms.append(elapsed_ms)
                tally.late += len(agent.pending) > 1
            agent.pending = []
            continue
        tally.failures[code] += 1
        if code.startswith("4"):  # refused: the agent drops what the server will never take
            agent.pending = []
        # else (5xx, timeout, connection lost): kept, sent again with the next collection


def client_process(
    url: str,
    token: str,
    agents: list[tuple[int, float]],
    readings: int,
    t0: float,
    interval: float,
    window: tuple[float, float],
    pipe: Connection,
) -> None:
    with contextlib.suppress(ImportError):
        import uvloop  # the load generator's own speed; the server runs as `rackwatch run`

        uvloop.install()
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)

    async def main() -> Tally:
        tally = Tally()
        sims = [Agent(i, readings, offset) for i, offset in agents]
        for n, agent in enumerate(sims):  # connect first, without flooding the accept queue
            with contextlib.suppress(OSError):
                agent.reader, agent.writer = await asyncio.open_connection(host, int(port))
                agent.connects += 1
            if n % 50 == 49:
                await asyncio.sleep(0.01)
        gc.freeze()  # the load generator's long-lived objects out of the collector's way
        results = await asyncio.gather(
            *(push_loop(a, host, int(port), token, t0, interval, window, tally) for a in sims),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                tally.failures[f"crash {type(result).__name__}: {result}"] += 1
        for agent in sims:
            tally.reconnects += max(0, agent.connects - 1)
            agent.close()
        return tally

    tally = asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pipe.send((tally, usage.ru_utime + usage.ru_stime))


# ------------------------------------------------------------------------------ the server


class RunProcess:
    """`rackwatch run` as a child process, its output on a pseudo-terminal as in a user's
    terminal (read by a thread, which keeps the last lines for error messages)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env={**env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffered = ""
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            buffered += ANSI.sub("", chunk.decode("utf-8", "replace"))
            *lines, buffered = re.split(r"[\r\n]+", buffered)
            self.tail.extend(line.rstrip() for line in lines if line.strip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output_tail(self, n: int = 25) -> str:
        self._reader.join(timeout=1)
        return "\n".join("  | " + line for line in list(self.tail)[-n:]) or "  (no output)"

    def interrupt(self, timeout: float) -> tuple[int | None, float]:
        """SIGINT, as Ctrl-C: (exit code, seconds it took to stop); killed after `timeout`."""
        began = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=2)
        with contextlib.suppress(OSError):
            os.close(self._master)
        return rc, time.perf_counter() - began


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) per thread group: the main thread (the event loop) and
    the others by name, numbers stripped."""
    out: dict[str, float] = collections.defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            key = "event loop" if task.name == str(pid) else re.sub(r"[\d_-]+$", "", name)
            out[key or name] += (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return dict(out)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def proc_rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def status_counters(url: str) -> dict[str, float]:
    """Samples received (all sources) and the store writer's counters, from GET /status."""
    with urllib.request.urlopen(url + "api/v1/status", timeout=60) as response:
        status = json.loads(response.read())
    writer = status.get("writer") or {}
    return {
        "received": float(status["samples_total"]),
        "written": float(writer.get("samples_written", math.nan)),
        "writer_errors": float(writer.get("errors", 0)),
        "writer_dropped": float(writer.get("dropped", 0)),
        "quarantined": float(writer.get("quarantined", 0)),
    }


def bus_drops(url: str) -> float:
    """Messages the bus dropped since the start (from /metrics: costly with many series, so
    read once, after the measured window)."""
    with urllib.request.urlopen(url + "metrics", timeout=120) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("rackwatch_bus_dropped_messages_total "):
                return float(line.split()[-1])
    return math.nan


def wait_server(data_dir: Path, run: RunProcess, timeout: float) -> str:
    """The run's URL, from the `server.json` it writes once it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            url: str = json.loads((data_dir / "server.json").read_text())["url"]
            return url
        time.sleep(0.2)
    run.interrupt(5)
    raise SystemExit("rackwatch run did not start:\n" + run.output_tail())


def stored_rows(data_dir: Path, from_ms: int, to_ms: int) -> tuple[int, int]:
    """(rows, distinct (series, instant)) of `host/bench-*` in the stopped run's store."""
    import numpy as np

    from rackwatch.model import SeriesRegistry
    from rackwatch.store.base import Query
    from rackwatch.store.duckdb import DuckDBStore

    store = DuckDBStore(data_dir / "rackwatch.duckdb", SeriesRegistry())
    try:
        rows = distinct = 0
        for pattern in ("host/bench-*", "host/bench-*/*"):
            result = store.query(Query(from_ms, to_ms, entity=pattern, tier="raw"))
            ids = np.repeat(result.series_ids, np.diff(result.offsets)).astype(np.int64)
            rows += len(result.ts)
            distinct += len(np.unique(ids << 32 | (result.ts - from_ms)))
        return rows, distinct
    finally:
        store.close()


# ------------------------------------------------------------------------------ main


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return math.nan, math.nan, math.nan
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2], ordered[min(n - 1, int(0.99 * n))], ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=50, help="readings per collection")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--seconds", type=float, default=60, help="measured window")
    parser.add_argument("--warmup", type=float, default=15, help="seconds before the window")
    parser.add_argument("--jitter-ms", type=float, default=20.0, help="push spread per instant")
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--scenario", default="very-large")
    parser.add_argument("--no-host", action="store_true", help="rackwatch run --no-host")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        data_dir = Path(tmp) / "data"
        env = dict(os.environ)
        limit = None
        if args.agents * args.readings + 10_000 > DEFAULT_SERIES_LIMIT:
            limit = args.agents * args.readings + 10_000  # the default would refuse them
            env["RACKWATCH_SERVER__INGEST_SERIES_LIMIT"] = str(limit)
        exe = shutil.which("rackwatch", path=str(Path(sys.executable).parent)) or "rackwatch"
        command = [exe, "run", "--port", "0", "--data-dir", str(data_dir)]
        command += ["--scenario", args.scenario] + (["--no-host"] if args.no_host else [])
        run = RunProcess(command, env)
        try:
            report(args, run, data_dir, limit)
        finally:
            if run.proc.poll() is None:
                run.interrupt(60)


def report(args: argparse.Namespace, run: RunProcess, data_dir: Path, limit: int | None) -> None:
    from rackwatch.tokens import TOKENS_FILE, TokenStore

    url = wait_server(data_dir, run, 120)
    token, _info = TokenStore(data_dir / TOKENS_FILE).create("ingest", name="bench-ingest")
    interval, seconds = args.interval, args.seconds
    connect_s = 3 + args.agents / 500
    t0 = math.ceil((time.time() + connect_s) / interval) * interval  # the first instant
    window = (t0 + args.warmup, t0 + args.warmup + seconds)
    rnd = random.Random(1)
    offsets = [rnd.random() * args.jitter_ms / 1000 for _ in range(args.agents)]
    spawn = mp.get_context("spawn")
    procs, pipes = [], []
    for p in range(args.client_procs):
        mine = [(i, offsets[i]) for i in range(p, args.agents, args.client_procs)]
        parent, child = spawn.Pipe(duplex=False)
        proc = spawn.Process(
            target=client_process,
            args=(url, token, mine, args.readings, t0, interval, window, child),
        )
        proc.start()
        procs.append(proc)
        pipes.append(parent)

    # The window: the server's CPU, threads and counters at both ends, its RSS meanwhile.
    time.sleep(max(0.0, window[0] - time.time()))
    before, threads0 = status_counters(url), thread_cpu_s(run.pid)
    cpu0, wall0 = proc_cpu_s(run.pid), time.monotonic()
    rss_peak = 0.0
    while time.time() < window[1]:
        rss_peak = max(rss_peak, proc_rss_mib(run.pid))
        time.sleep(0.5)
    cpu1, wall1 = proc_cpu_s(run.pid), time.monotonic()
    after, threads1 = status_counters(url), thread_cpu_s(run.pid)
    results = [pipe.recv() for pipe in pipes]  # the agents finish their last pushes
    for proc in procs:
        proc.join(30)
    # Drained once the writer's count stops moving; then the bus's drops, and the stop.
    settled = status_counters(url)
    for _ in range(30):
        time.sleep(1.0)
        now = status_counters(url)
        if now["written"] == settled["written"]:
            break
        settled = now
    dropped_on_bus = bus_drops(url)
    rc, stop_s = run.interrupt(120)

    tallies = [r[0] for r in results]
    client_cpu = sum(r[1] for r in results)
    latencies = [x for t in tallies for x in t.latencies_ms]
    readings = sum(t.readings for t in tallies)
    accepted_total = sum(t.accepted_total for t in tallies)
    failures = sum((t.failures for t in tallies), collections.Counter[str]())
    offered = args.agents * args.readings / interval
    cpu = (cpu1 - cpu0) / (wall1 - wall0)
    rate = readings / seconds
    p50, p99, worst = percentiles(latencies)

    print(
        f"rackwatch run --scenario {args.scenario}{' --no-host' if args.no_host else ''}; "
        f"{args.agents:,} agents x {args.readings} readings every {interval:g} s, pushed within "
        f"{args.jitter_ms:g} ms of each instant = {offered:,.0f} samples/s offered, "
        f"{args.agents * args.readings:,} agent series"
        + (f" (ingest_series_limit {limit:,})" if limit is not None else "")
        + f"; {seconds:g} s measured after {args.warmup:g} s"
    )
    print(
        f"accepted: {len(latencies) / seconds:,.1f} pushes/s, {rate:,.0f} samples/s "
        f"({rate / offered:.1%} of offered); pushes carrying a backlog "
        f"{sum(t.late for t in tallies)}, connections reopened {sum(t.reconnects for t in tallies)}"
    )
    print(f"push latency (written -> 202): p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {worst:.1f} ms")
    spent = {k: threads1[k] - threads0.get(k, 0.0) for k in threads1}
    by_thread = ", ".join(
        f"{k} {s / (wall1 - wall0):.0%}"
        for k, s in sorted(spent.items(), key=lambda x: -x[1])
        if s > 0.01 * (wall1 - wall0)
    )
    print(
        f"server: CPU {cpu:.0%} of one core ({by_thread}); RSS peak {rss_peak:,.0f} MiB in the "
        f"window; clients {client_cpu:.1f} s of CPU"
    )
    received = (after["received"] - before["received"]) / seconds
    written = (after["written"] - before["written"]) / seconds
    errors = {k: after[k] - before[k] for k in ("writer_errors", "writer_dropped", "quarantined")}
    print(
        f"server counters: received {received:,.0f} samples/s, written {written:,.0f}/s (all "
        f"sources); writer errors {errors['writer_errors']:.0f}, dropped "
        f"{errors['writer_dropped']:.0f}, quarantined {errors['quarantined']:.0f}; bus drops "
        f"(whole run) {dropped_on_bus:.0f}; refusals/errors (whole run): "
        + (", ".join(f"{code} x{n}" for code, n in sorted(failures.items())) or "none")
    )
    rows, distinct = stored_rows(data_dir, round(t0 * 1000), round((window[1] + interval) * 1000))
    all_stored = rows == accepted_total == distinct
    print(
        f"stopped (SIGINT) in {stop_s:.1f} s, exit {rc}; store: {rows:,} host/bench-* rows, "
        f"{distinct:,} distinct (series, instant), for {accepted_total:,} readings accepted: "
        + ("all stored once" if all_stored else "MISMATCH")
    )
    problems = []
    if rate < 0.999 * offered:
        problems.append(f"accepted {rate:,.0f}/s < offered {offered:,.0f}/s")
    if not all_stored:
        problems.append("not every accepted sample stored once")
    if failures or any(errors.values()) or dropped_on_bus:
        problems.append("refusals, errors or drops")
    if not p99 < interval * 1000:
        problems.append(f"push p99 {p99:,.0f} ms >= the interval")
    issue = "met" if not problems and args.agents >= 1000 and rate >= ISSUE_TARGET else "not met"
    print(
        f"RESULT: {rate:,.0f} samples/s from {args.agents:,} agents every {interval:g} s, push "
        f"p50 {p50:,.0f} ms p99 {p99:,.0f} ms, server CPU {cpu:.0%} of a core, RSS "
        f"{rss_peak:,.0f} MiB: "
        + ("sustained" if not problems else "NOT sustained (")
        + "; ".join(problems)
        + (")" if problems else "")
        + f"; issue 9 (>= 1,000 agents, >= {ISSUE_TARGET:,} samples/s): {issue}"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
