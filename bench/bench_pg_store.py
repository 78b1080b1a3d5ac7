"""PostgreSQL store benchmark: ingest rate (one writer) and query latency.

    python bench/bench_pg_store.py [--series 2000] [--hours 2] [--steps-per-write 12 1]
                                   [--url postgresql://postgres@127.0.0.1:5432/postgres]

Data: `--series` series (server power, noisy, rounded to 1 W, 1 in 2000 readings NULL), one
sample every 5 s for `--hours` hours, time-major as sources emit it, written `--steps-per-write`
instants of every series per `write` (12: a minute, 24,000 samples at 2,000 series), each run
into a fresh schema (`bench_pg`, dropped at the end).

Ingest figures: samples/s over wall time, and per core: samples per CPU second of this
process plus the PostgreSQL backend serving the writing connection (from /proc, so the server
must run on this machine; PostgreSQL's background writers are not counted). Queries (median of
5): a 1-hour raw range of every series, the whole range in 1-minute buckets (every series and
one), and one day of 1-minute buckets of one series.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import psycopg

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import Query
from rackwatch.store.postgres import PostgresStore

STEP_MS = 5_000
T0_MS = 1_795_392_000_000  # 2026-11-23 00:00 UTC
HOUR_MS = 3_600_000
SCHEMA = "bench_pg"


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drop(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _median_ms(fn: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(url: str, n_series: int, hours: float, steps_per_write: int, queries: bool) -> None:
    _drop(url)
    registry = SeriesRegistry()
    ids = np.array(
        [
            registry.intern(f"c01/r{i // 40:02d}/s{i % 40:02d}", "power_watts")
            for i in range(n_series)
        ],
        np.int32,
    )
    n_steps = int(hours * HOUR_MS / STEP_MS)
    end = T0_MS + n_steps * STEP_MS
    store = PostgresStore(url, registry, schema=SCHEMA, clock=lambda: end)
    rng = np.random.default_rng(0)
    base = rng.uniform(150, 450, n_series)
    backend = store._con.info.backend_pid  # the writing connection's server process
    cpu0, pg0, t0 = time.process_time(), _proc_cpu_s(backend), time.perf_counter()
    for a in range(0, n_steps, steps_per_write):
        b = min(n_steps, a + steps_per_write)
        instants = T0_MS + np.arange(a, b, dtype=np.int64) * STEP_MS
        values = np.round(base + rng.normal(0, 5, (b - a, n_series)))
        values[rng.random(values.shape) < 1 / 2000] = np.nan
        store.write(Batch.from_grid(instants, ids, values))
    store.flush()
    wall = time.perf_counter() - t0
    cpu, pg = time.process_time() - cpu0, _proc_cpu_s(backend) - pg0
    n = n_steps * n_series
    print(
        f"ingest {n_series} series x {n_steps} steps ({n:,} samples), {steps_per_write} step(s) "
        f"per write: {n / wall:,.0f} samples/s wall ({wall:.1f} s); CPU python {cpu:.1f} s + "
        f"backend {pg:.1f} s = {n / (cpu + pg):,.0f} samples per CPU second"
    )
    stats = store.stats()
    print(
        f"  at rest: {stats.bytes_on_disk / 2**20:,.0f} MiB, "
        f"{stats.bytes_on_disk / max(1, stats.n_raw_rows):.1f} B/sample (raw, rollups, indexes)"
    )
    if queries:
        last_hour = Query(end - HOUR_MS, end)
        one = "c01/r00/s01"
        cases = {
            f"raw 1 h, {n_series} series": last_hour,
            f"1m buckets {hours:g} h, {n_series} series": Query(T0_MS, end, step_ms=60_000),
            f"1m buckets {hours:g} h, 1 series": Query(T0_MS, end, entity=one, step_ms=60_000),
            "1m buckets 1 day, 1 series": Query(
                end - 24 * HOUR_MS, end, entity=one, step_ms=60_000
            ),
            f"1h buckets {hours:g} h, {n_series} series": Query(T0_MS, end, step_ms=HOUR_MS),
        }
        for name, q in cases.items():
            rows = len(store.query(q))
            print(f"  query {name}: {_median_ms(partial(store.query, q)):.1f} ms ({rows:,} rows)")

        def session() -> None:
            with store.analytics() as sql:
                sql.execute("SELECT count(*) FROM m1").fetchall()

        with_sql = _median_ms(session, n=3)
        print(f"  analytics() session (copies both tiers): {with_sql:.0f} ms")
    store.close()
    _drop(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--steps-per-write", type=int, nargs="+", default=[12, 1])
    args = parser.parse_args()
    for i, steps in enumerate(args.steps_per_write):
        run(args.url, args.series, args.hours, steps, queries=i == 0)


if __name__ == "__main__":
    main()
