"""Report benchmark: how long a month's report (from the 1-hour tier) and a day's report (from
the 1-minute tier) take for a room of N GPU servers, as `rackwatch run` makes them.

    python bench/bench_report.py [--servers 20 2000] [--day-servers 20 200] [--gpus 4]

Data: per server CPU, memory (used and ratio), power, CPU and inlet temperatures, a disk
(used and ratio), a NIC (up and down) and `--gpus` cards (utilisation, memory used, free and
ratio, temperature, power), plus two fans the report leaves out: 36 series a server with 4
cards. The month (March 2026) is written as one sample per series and hour, the day (5 March
2026) as one per series and minute, through the store's write path (so the rollup tiers are
the store's own), with daily cycles, noise and each metric's sensor resolution, into a
temporary directory deleted at the end (nothing is kept in the repository). The store is
opened as `rackwatch run` opens it (DuckDB limited to 128 MB).

Timed: `Reporter.generate` (the SQL statistics, the events, the energy accounting at the
default tariff, the HTML with its charts, JSON and CSV, written to the archive), and the
statistics alone (`build_report`); the best of 3 runs for up to 200 servers, one beyond.
Targets (docs/REPORTS.md): a month for 20 servers in <= 2 s, for 2,000 in <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from rackwatch.app import LIVE_DUCKDB_MEMORY
from rackwatch.engine.energy import Tariff
from rackwatch.engine.reports import (
    EnergyOptions,
    ReportArchive,
    Reporter,
    account_energy,
    build_report,
    period_of,
)
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import Retention
from rackwatch.store.duckdb import DuckDBStore

UTC = ZoneInfo("UTC")
MONTH = dt.date(2026, 3, 1)
DAY = dt.date(2026, 3, 5)
GIB = 1024**3
CARD_BYTES = 24 * GIB
F64 = npt.NDArray[np.float64]

MACHINE = (
    ("cpu_utilization_ratio", 3),
    ("memory_used_bytes", 0),
    ("memory_utilization_ratio", 3),
    ("power_watts", 0),
    ("cpu_temperature_celsius", 1),
    ("inlet_temperature_celsius", 1),
)
DISK = (("disk_used_bytes", 0), ("disk_utilization_ratio", 3))
NIC = (("network_receive_bytes_per_second", 0), ("network_transmit_bytes_per_second", 0))
CARD = (
    ("gpu_utilization_ratio", 2),
    ("gpu_memory_used_bytes", 0),
    ("gpu_memory_free_bytes", 0),
    ("gpu_memory_utilization_ratio", 3),
    ("gpu_temperature_celsius", 0),
    ("gpu_power_watts", 1),
)


def server_path(i: int) -> str:
    return f"c{i // 400 + 1:02d}/r{i // 20 % 20 + 1:02d}/s{i % 20 + 1:02d}"


def room(n_servers: int, n_gpus: int) -> tuple[SeriesRegistry, list[tuple[int, str, int]]]:
    """The registry and (series, metric, decimals) of every series."""
    registry = SeriesRegistry()
    series: list[tuple[int, str, int]] = []

    def add(entity: str, metric: str, decimals: int) -> None:
        series.append((registry.intern(entity, metric), metric, decimals))

    for i in range(n_servers):
        s = server_path(i)
        for metric, d in MACHINE:
            add(s, metric, d)
        for metric, d in DISK:
            add(f"{s}/disk-root", metric, d)
        for metric, d in NIC:
            add(f"{s}/net-eth0", metric, d)
        for k in range(n_gpus):
            for metric, d in CARD:
                add(f"{s}/gpu{k}", metric, d)
        for fan in (1, 2):
            add(f"{s}/fan{fan}", "fan_rpm", -1)
    return registry, series


def values(metric: str, load: F64, rng: np.random.Generator) -> F64:
    """One metric's readings from the servers' load (0..1) at each instant."""
    noise = rng.normal(0, 0.03, load.shape)
    if metric in ("cpu_utilization_ratio", "memory_utilization_ratio", "gpu_utilization_ratio"):
        return np.clip(load + noise, 0, 1)
    if metric == "gpu_memory_utilization_ratio":
        return np.clip(load * 1.1 + noise, 0, 1)
    if metric == "gpu_memory_used_bytes":
        return np.clip(load * 1.1 + noise, 0, 1) * CARD_BYTES
    if metric == "gpu_memory_free_bytes":
        return (1 - np.clip(load * 1.1 + noise, 0, 1)) * CARD_BYTES
    if metric == "memory_used_bytes":
        return (0.2 + 0.6 * load) * 256 * GIB
    if metric == "disk_used_bytes":
        return (0.5 + 0.1 * load) * 8e12
    if metric == "disk_utilization_ratio":
        return 0.5 + 0.1 * load
    if metric.startswith("network_"):
        return np.maximum(0, load * 1.25e8 + rng.normal(0, 1e6, load.shape))
    if metric == "power_watts":
        return 400 + 2000 * load + rng.normal(0, 20, load.shape)
    if metric == "gpu_power_watts":
        return 60 + 240 * load
    if metric.endswith("temperature_celsius"):
        base = 22.0 if metric.startswith("inlet") else 40.0
        return base + 35 * load * (0 if metric.startswith("inlet") else 1) + noise * 10
    return 9000 + 3000 * load  # fan_rpm


def synthesise(path: Path, n_servers: int, n_gpus: int, start_ms: int, n_steps: int,
               step_ms: int, block: int) -> tuple[int, float]:  # fmt: skip
    """Write `n_steps` instants `step_ms` apart, `block` instants per write; (samples, s)."""
    registry, series = room(n_servers, n_gpus)
    ids = np.asarray([s for s, _, _ in series], np.int32)
    server_of = np.repeat(np.arange(n_servers), len(series) // n_servers)
    phase = np.random.default_rng(1).uniform(0, 2 * np.pi, n_servers)
    rng = np.random.default_rng(2)
    store = DuckDBStore(
        path,
        registry,
        retention=Retention(raw_ms=10**12, m1_ms=10**12, h1_ms=10**12),
        clock=lambda: start_ms + n_steps * step_ms,
        wal_sync_seconds=60,
    )
    began = time.perf_counter()
    for a in range(0, n_steps, block):
        steps = np.arange(a, min(n_steps, a + block))
        ts = start_ms + steps * step_ms
        hours = (ts % 86_400_000) / 3_600_000
        # a daily cycle peaking mid-afternoon, shifted per server
        load = 0.45 + 0.35 * np.sin((hours[:, None] - 9) / 24 * 2 * np.pi + phase[None, :] / 6)
        load = np.clip(load + rng.normal(0, 0.05, load.shape), 0, 1)  # (steps, servers)
        grid = np.empty((len(steps), len(series)))
        per_server = load[:, server_of]
        for metric in {m for _, m, _ in series}:
            cols = [i for i, (_, m, _) in enumerate(series) if m == metric]
            grid[:, cols] = values(metric, per_server[:, cols], rng)
        decimals = np.asarray([d for _, _, d in series])
        for d in np.unique(decimals):
            grid[:, decimals == d] = np.round(grid[:, decimals == d], int(d))
        store.write(Batch.from_grid(ts, ids, grid))
    store.close()
    return n_steps * len(series), time.perf_counter() - began


def time_report(path: Path, kind: str, day: dt.date, repeat: int) -> tuple[float, float, int]:
    """(statistics s, whole generation s, bytes written), the best of `repeat` runs (other
    processes share this machine), on the store as `rackwatch run` opens it."""
    registry = SeriesRegistry()
    store = DuckDBStore(path, registry, duckdb_config={"memory_limit": LIVE_DUCKDB_MEMORY})
    try:
        period = period_of(kind, day, UTC)
        energy = account_energy(EnergyOptions(Tariff(0.20)))  # the default [energy] tariff
        reporter = Reporter(store, ReportArchive(path / "reports"), UTC, accountant=energy)
        statistics, total, n_bytes = float("inf"), float("inf"), 0
        for _ in range(repeat):
            began = time.perf_counter()
            build_report(store, period)
            statistics = min(statistics, time.perf_counter() - began)
            made = reporter.generate(period)
            total = min(total, made.seconds)
            n_bytes = sum(len(b) for b in made.files.values())
        return statistics, total, n_bytes
    finally:
        store.close()


def run(kind: str, n_servers: int, n_gpus: int, root: Path) -> None:
    path = root / f"{kind}-{n_servers}"
    if kind == "month":
        start = int(dt.datetime.combine(MONTH, dt.time(0), UTC).timestamp() * 1000)
        samples, setup = synthesise(path, n_servers, n_gpus, start, 31 * 24, 3_600_000, 24)
        day = MONTH
    else:
        start = int(dt.datetime.combine(DAY, dt.time(0), UTC).timestamp() * 1000)
        samples, setup = synthesise(path, n_servers, n_gpus, start, 1440, 60_000, 60)
        day = DAY
    repeat = 3 if n_servers <= 200 else 1
    statistics, total, n_bytes = time_report(path, kind, day, repeat)
    target = {20: 2.0, 2000: 60.0}.get(n_servers) if kind == "month" else None
    verdict = (
        ""
        if target is None
        else f"  (target <= {target:g} s: {'met' if total <= target else 'MISSED'})"
    )
    print(
        f"{kind:5s} {n_servers:5d} servers x {n_gpus} GPUs: {samples / 1e6:6.1f} M samples "
        f"written in {setup:6.1f} s; report {total:6.2f} s (statistics {statistics:5.2f} s, "
        f"{n_bytes / 1e6:5.1f} MB written){verdict}",
        flush=True,
    )
    shutil.rmtree(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, nargs="*", default=[20, 2000])
    parser.add_argument("--day-servers", type=int, nargs="*", default=[20, 200])
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (deleted)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-report-", dir=args.dir))
    try:
        for n in args.servers:
            run("month", n, args.gpus, root)
        for n in args.day_servers:
            run("day", n, args.gpus, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
