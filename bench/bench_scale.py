"""A site on several processes: the twin through NATS JetStream into PostgreSQL by partitioned
store workers, with a store worker killed (SIGKILL) and restarted and the NATS server restarted.

    python bench/bench_scale.py [--servers 10000] [--speed 9] [--minutes 10] [--partitions 2]
                                [--store postgresql://postgres@127.0.0.1:5432/rackwatch_scale]
                                [--kill-at 0.4] [--nats-restart-at 0.7] [--no-faults]
                                [--stream-gib 4]

Every part is a real process: a nats-server of its own (on a free port, so that it can be
restarted), `rackwatch worker --role twin` (the `very-large` scenario, 20 servers a cluster;
13 series a server at 5 s steps, so `--speed 9` makes 10,000 servers about 240,000 samples/s)
and one `rackwatch worker --role store --partition K/N` per partition into a fresh PostgreSQL
database. Each worker writes its counters and lag (`--stats`) every 2 s; this script samples
them and each process's CPU and memory (psutil; PostgreSQL: all its backends together).

Printed: samples/s published and stored over the run, the lag from JetStream storing a message
to the store worker having written it (p50/p99: per window, and over the run), CPU (% of one
core) and RSS per part; after the kill and after the NATS restart, the time until the stored
rate caught up; at the end, samples published, stored, lost and stored twice (the store keeps
one value per series and instant; duplicates delivered are counted as messages redelivered).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import psycopg

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SERIES_PER_SERVER = 13.2  # the very-large scenario's series over its servers (132,005 / 10,000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing answers on port {port}")


@dataclass
class Part:
    name: str
    command: list[str]
    stats: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    cpu_s: list[tuple[float, float]] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    lost_cpu_s: float = 0.0
    """CPU of processes this part had before a restart."""
    base_samples: int = 0
    """Samples of processes this part had before a restart."""

    def start(self, env: dict[str, str], logs: Path) -> None:
        self.log = logs / f"{self.name}.log"
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.command, env=env, stdout=out, stderr=out)

    def sample(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            p = psutil.Process(self.proc.pid)
            t = p.cpu_times()
            self.cpu_s.append((time.monotonic(), self.lost_cpu_s + t.user + t.system))
            self.rss.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            pass

    def read_stats(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.stats.read_text())) if self.stats else {}
        except (OSError, ValueError):
            return {}

    def samples(self) -> int:
        """Samples this part's processes have handled, restarts included."""
        return self.base_samples + int(self.read_stats().get("samples", 0))  # type: ignore[call-overload]


class PostgresCpu:
    """CPU seconds of every PostgreSQL process seen while sampling, those that ended (a
    worker's connection) included."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.start = self.total()

    def sample(self) -> None:
        for p in psutil.process_iter(["name"]):
            if p.info["name"] in ("postgres", "postmaster"):
                try:
                    t = p.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                self.seen[p.pid] = t.user + t.system

    def total(self) -> float:
        self.sample()
        return sum(self.seen.values())


def postgres_rss() -> int:
    total = 0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] in ("postgres", "postmaster"):
            try:
                total += p.memory_info().rss - p.memory_info().shared
            except psutil.NoSuchProcess:
                continue
    return total


def fresh_database(url: str) -> None:
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def stored_samples(url: str) -> int:
    """Rows in the store's raw tier. Its primary key (ts, series) makes a second row for an
    instant impossible, so these are distinct samples."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM rackwatch.raw").fetchone()
    return int(row[0]) if row else 0


def last_count(log: Path, name: str) -> int:
    import re

    tail = log.read_text().rsplit("stopped:", 1)[-1]
    found = re.search(rf"(?:^|, ){name} ([\d,]+)", tail.strip())
    return int(found.group(1).replace(",", "")) if found else -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--speed", type=float, default=9.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/rackwatch_scale")
    ap.add_argument("--kill-at", type=float, default=0.4)
    ap.add_argument("--nats-restart-at", type=float, default=0.7)
    ap.add_argument("--no-faults", action="store_true", help="no kill, no NATS restart")
    ap.add_argument("--stream-gib", type=int, default=4, help="[bus] stream_max_bytes, GiB")
    args = ap.parse_args()

    clusters = max(1, round(args.servers / 20))
    rate = clusters * 20 * SERIES_PER_SERVER / 5.0 * args.speed
    work = Path(tempfile.mkdtemp(prefix="rackwatch-scale-"))
    print(
        f"{clusters * 20:,} servers at speed {args.speed:g}: about {rate:,.0f} samples/s, "
        f"{args.partitions} store workers, {args.minutes:g} min; logs in {work}",
        flush=True,
    )
    fresh_database(args.store)
    port = free_port()
    nats_cmd = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(work / "js")]
    nats = Part("nats-server", nats_cmd)
    env = {
        **os.environ,
        "RACKWATCH_BUS__PREFIX": f"scale{uuid.uuid4().hex[:6]}",
        "RACKWATCH_BUS__ACK_WAIT_SECONDS": "10",
        # A backlog the store workers have not written yet must not age out of the stream
        # (1 GiB holds about 4 minutes of a 10,000-server twin). The server reserves it per
        # stream out of 75 % of the disk free when it starts: 3 x 16 GiB made a restarted
        # server refuse to recover the telemetry stream once PostgreSQL had filled the disk.
        "RACKWATCH_BUS__STREAM_MAX_BYTES": str(args.stream_gib << 30),
    }
    url = f"nats://127.0.0.1:{port}"
    worker = [sys.executable, "-m", "rackwatch", "worker", "--bus", url]
    n = args.partitions
    stores = [
        Part(
            f"store-{k}",
            [
                *worker,
                *("--role", "store", "--partition", f"{k}/{n}", "--store", args.store),
                *("--data-dir", str(work / "data"), "--stats", str(work / f"store-{k}.json")),
            ],
            stats=work / f"store-{k}.json",
        )
        for k in range(n)
    ]
    twin = Part(
        "twin",
        [
            *worker,
            *("--role", "twin", "--partition", f"0/{n}", "--scenario", "very-large"),
            *("--clusters", str(clusters), "--speed", str(args.speed)),
            *("--data-dir", str(work / "data"), "--stats", str(work / "twin.json")),
        ],
        stats=work / "twin.json",
    )
    nats.start(env, work)
    wait_port(port)
    for part in stores:
        part.start(env, work)
    time.sleep(4)  # their durable consumers exist before the first publish
    twin.start(env, work)
    parts = [twin, *stores, nats]

    duration = args.minutes * 60
    t0 = time.monotonic()
    pg = PostgresCpu()
    pg_rss: list[int] = []
    timeline: list[dict[str, object]] = []
    marks: dict[str, float] = {}
    killed = restarted = False
    while (now := time.monotonic() - t0) < duration:
        for part in parts:
            part.sample()
        pg_rss.append(postgres_rss())
        pg.sample()
        row: dict[str, object] = {"t": now}
        for part in [twin, *stores]:
            row[part.name] = {**part.read_stats(), "samples": part.samples()}
        timeline.append(row)
        if not args.no_faults and not killed and now >= args.kill_at * duration:
            victim = stores[0]
            assert victim.proc is not None and victim.cpu_s
            victim.lost_cpu_s = victim.cpu_s[-1][1]
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            # Its stats file is up to 2 s old: what it wrote (and acknowledged) since would
            # be missing from the count. The store knows; the others' files are as old, so
            # this leans the other way by at most 2 s of their rate.
            others = sum(s.samples() for s in stores[1:])
            victim.base_samples = max(victim.samples(), stored_samples(args.store) - others)
            assert victim.stats is not None
            victim.stats.unlink(missing_ok=True)
            marks["kill"] = now
            time.sleep(5)
            victim.start(env, work)
            marks["kill_restart"] = time.monotonic() - t0
            killed = True
            print(f"  {now:6.0f} s  store-0 killed (SIGKILL), restarted 5 s later", flush=True)
        if not args.no_faults and not restarted and now >= args.nats_restart_at * duration:
            assert nats.proc is not None
            nats.lost_cpu_s = nats.cpu_s[-1][1] if nats.cpu_s else 0.0
            nats.proc.send_signal(signal.SIGTERM)
            nats.proc.wait(timeout=30)
            marks["nats_stop"] = time.monotonic() - t0
            time.sleep(2)
            nats.start(env, work)
            wait_port(port)
            marks["nats_restart"] = time.monotonic() - t0
            restarted = True
            print(f"  {now:6.0f} s  nats-server restarted", flush=True)
        stored = sum(s.samples() for s in stores)
        published = twin.samples()
        if len(timeline) % 15 == 1:
            print(
                f"  {now:6.0f} s  published {published:>13,}  stored {stored:>13,}",
                flush=True,
            )
        time.sleep(2)

    assert twin.proc is not None
    twin.proc.send_signal(signal.SIGINT)
    twin.proc.wait(timeout=120)
    published = last_count(twin.log, "samples")  # type: ignore[arg-type]
    stop_t = time.monotonic()
    deadline = stop_t + 600
    while time.monotonic() < deadline:  # the store workers drain what is left
        got = sum(s.samples() for s in stores)
        if got >= published or stored_samples(args.store) >= published:
            break
        time.sleep(5)
    drain_s = time.monotonic() - stop_t
    for part in stores:
        assert part.proc is not None
        part.proc.send_signal(signal.SIGINT)
    for part in stores:
        assert part.proc is not None
        part.proc.wait(timeout=120)
    pg_cpu = pg.total() - pg.start
    n_rows = stored_samples(args.store)
    assert nats.proc is not None
    nats.proc.send_signal(signal.SIGTERM)
    nats.proc.wait(timeout=30)

    report(
        args,
        timeline,
        parts,
        stores,
        marks,
        published,
        n_rows,
        drain_s,
        pg_cpu,
        pg_rss,
        duration,
    )


def report(
    args: argparse.Namespace,
    timeline: list[dict[str, object]],
    parts: list[Part],
    stores: list[Part],
    marks: dict[str, float],
    published: int,
    n_rows: int,
    drain_s: float,
    pg_cpu_s: float,
    pg_rss: list[int],
    duration: float,
) -> None:
    def total(row: dict[str, object], names: list[str]) -> int:
        return sum(int(dict(row.get(n, {})).get("samples", 0)) for n in names)  # type: ignore[arg-type]

    names = [s.name for s in stores]
    ts = np.array([float(r["t"]) for r in timeline])  # type: ignore[arg-type]
    stored = np.array([total(r, names) for r in timeline], dtype=float)
    pub = np.array([total(r, ["twin"]) for r in timeline], dtype=float)
    warm = ts >= 30
    span = ts[warm][-1] - ts[warm][0] if warm.sum() > 1 else 1.0
    pub_rate = (pub[warm][-1] - pub[warm][0]) / span if warm.sum() > 1 else 0.0
    stored_rate = (stored[warm][-1] - stored[warm][0]) / span if warm.sum() > 1 else 0.0
    lags = [
        (float(r["t"]), dict(r.get(n, {})))  # type: ignore[arg-type]
        for r in timeline
        for n in names
    ]
    p50s = [d["lag_p50_s"] for t, d in lags if t >= 30 and d.get("lag_p50_s") is not None]
    p99s = [d["lag_p99_s"] for t, d in lags if t >= 30 and d.get("lag_p99_s") is not None]
    overall = [last_lags(s.log) for s in stores]  # type: ignore[arg-type]

    print()
    print(f"run: {duration / 60:g} min, {args.partitions} store workers")
    print(f"published  {pub_rate:>12,.0f} samples/s (after 30 s warm-up)")
    print(f"stored     {stored_rate:>12,.0f} samples/s")
    if p50s:
        print(
            f"lag (JetStream -> written), 2 s windows: p50 median {np.median(p50s):.3f} s, "
            f"p99 median {np.median(p99s):.3f} s, worst window p99 {max(p99s):.2f} s"
        )
    for name, lag in zip(names, overall, strict=True):
        print(f"  {name}: over the run {lag}")
    print()
    print(f"{'part':<14} {'CPU % of a core':>16} {'RSS MiB (max)':>14}")
    for part in parts:
        if len(part.cpu_s) > 1:
            (t_a, c_a), (t_b, c_b) = part.cpu_s[0], part.cpu_s[-1]
            cpu = 100 * (c_b - c_a) / max(t_b - t_a, 1e-9)
            print(f"{part.name:<14} {cpu:>16.0f} {max(part.rss) / 2**20:>14.0f}")
    print(f"{'postgresql':<14} {100 * pg_cpu_s / duration:>16.0f} {max(pg_rss) / 2**20:>14.0f}")
    for start, label in (("kill_restart", "store-0 restart"), ("nats_restart", "NATS restart")):
        if start in marks:
            print(f"{label}: caught up after {catch_up(ts, stored, pub, marks[start]):.0f} s")
    print()
    redelivered = sum(
        int(dict(timeline[-1].get(n, {})).get("redelivered_messages", 0))  # type: ignore[arg-type]
        for n in names
    )
    print(f"samples published {published:,}; stored {n_rows:,} (one per series and instant)")
    print(
        f"lost {published - n_rows:,}; messages delivered again (dropped as stored) "
        f"{redelivered:,}; the store workers drained the rest in {drain_s:.0f} s after the "
        "twin stopped"
    )


def catch_up(ts: np.ndarray, stored: np.ndarray, pub: np.ndarray, since: float) -> float:
    """Seconds after `since` until the backlog (published - stored) is back to what it was
    before the fault (at most 2 s of samples more)."""
    before = ts < since - 5
    if not before.any():
        return float("nan")
    normal = float(np.median((pub - stored)[before][-10:]))
    slack = max(normal * 1.5, float(np.median(np.diff(pub[before][-10:]))) * 2)
    after = np.flatnonzero((ts > since) & ((pub - stored) <= slack))
    return float(ts[after[0]] - since) if len(after) else float("nan")


def last_lags(log: Path) -> str:
    tail = log.read_text().rsplit("stopped:", 1)[-1]
    return tail.split("lag", 1)[-1].strip() if "lag" in tail else "-"


if __name__ == "__main__":
    main()
