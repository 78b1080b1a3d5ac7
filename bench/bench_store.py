"""Store benchmark: ingest rate with rollups, bytes at rest, OHLC query latency, peak memory.

    python bench/bench_store.py [--days 7] [--servers 20] [--dir DIR]

Data: `--servers` servers x 13 series (7 server metrics, 2 fans x 3 metrics), one sample every
5 s for `--days` days, time-major as sources emit it. Signals are smooth (daily cycle, Poisson
bursts, first-order thermal lag) plus small noise, rounded to each metric's sensor resolution
(temperatures 0.1 degC with sigma 0.15, power 1 W, rpm 10), levels constant between changes,
and 1 in 2000 readings NULL (NaN).

Ingest is timed twice, into a fresh store each time: one step of all series per write, and 720
steps (an hour) per write. The timed span covers every `write` plus `close` (the last flush).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch, SeriesRegistry
from rackwatch.model.catalogue import METRICS
from rackwatch.store.base import Query, QueryResult, Retention
from rackwatch.store.duckdb import DuckDBStore

DAY_S = 86_400
STEP_MS = 5_000
T0_MS = 1_795_392_000_000  # 2026-11-23 00:00 UTC

SERVER_METRICS = (
    "cpu_temperature_celsius",
    "inlet_temperature_celsius",
    "chassis_temperature_celsius",
    "power_watts",
    "airflow_cfm",
    "cpu_utilization_ratio",
    "disk_ok",
)
FAN_METRICS = ("fan_level", "fan_rpm", "fan_power_watts")


def _decimals(metric: str) -> int:
    resolution = METRICS[metric].resolution or 0.001
    return round(-float(np.log10(resolution)))


def _lag(x: npt.NDArray[np.float64], step_s: float, tau_s: float) -> npt.NDArray[np.float64]:
    """First-order lag (thermal inertia) as a truncated exponential kernel."""
    alpha = step_s / tau_s
    kernel = alpha * (1 - alpha) ** np.arange(int(6 * tau_s / step_s))
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(len(kernel) - 1, x[0]), x])
    out: npt.NDArray[np.float64] = np.convolve(padded, kernel, mode="valid")
    return out


def generate(
    n_servers: int, days: float, seed: int = 0
) -> tuple[SeriesRegistry, npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(registry, series ids, ts[steps], values[steps, series]) for the benchmark."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY_S * 1000 / STEP_MS)
    t = np.arange(n) * (STEP_MS / 1000)
    registry = SeriesRegistry()
    ids: list[int] = []
    cols: list[npt.NDArray[np.float64]] = []

    def add(entity: str, metric: str, x: npt.NDArray[np.float64]) -> None:
        ids.append(registry.intern(entity, metric))
        cols.append(np.round(x, _decimals(metric)))

    for s in range(n_servers):
        entity = f"c01/r{s // 10 + 1:02d}/s{s % 10 + 1:02d}"
        util = 0.35 + 0.25 * np.sin(2 * np.pi * (t / DAY_S - rng.uniform(0, 0.2)))
        burst = np.zeros(n + 400)
        for start, length, height in zip(
            rng.integers(0, n, rng.poisson(days * 6)),
            rng.integers(60, 360, 10_000),
            rng.uniform(0.1, 0.4, 10_000),
            strict=False,
        ):
            burst[start : start + length] += height
        util = np.clip(util + burst[:n] + rng.normal(0, 0.02, n), 0, 1)
        heat = _lag(util, STEP_MS / 1000, 60)
        inlet = 21 + 3 * s / n_servers + 0.5 * np.sin(2 * np.pi * t / DAY_S)
        level = np.full(n, 2.0)
        for at in rng.integers(0, n, 3):
            level[at:] = rng.integers(1, 4)
        add(entity, "cpu_temperature_celsius", inlet + 15 + 35 * heat + rng.normal(0, 0.15, n))
        add(entity, "inlet_temperature_celsius", inlet + rng.normal(0, 0.15, n))
        add(entity, "chassis_temperature_celsius", inlet + 8 * heat + rng.normal(0, 0.15, n))
        add(entity, "power_watts", 150 + 300 * util + rng.normal(0, 2, n))
        add(entity, "airflow_cfm", 40 + 10 * level + rng.normal(0, 0.3, n))
        add(entity, "cpu_utilization_ratio", util)
        add(entity, "disk_ok", np.ones(n))
        for fan in (1, 2):
            fan_entity = f"{entity}/fan{fan}"
            add(fan_entity, "fan_level", level)
            add(fan_entity, "fan_rpm", 2000 + 1500 * level + rng.normal(0, 15, n))
            add(fan_entity, "fan_power_watts", 2 + 3 * level + rng.normal(0, 0.1, n))
    grid = np.stack(cols, axis=1)
    grid[rng.random(grid.shape) < 5e-4] = np.nan
    ts = T0_MS + np.arange(n, dtype=np.int64) * STEP_MS
    return registry, np.asarray(ids, np.int32), ts, grid


def _pretouch(gib: float) -> None:
    """Touch memory once so that the first store does not pay for the VM handing out fresh
    pages (here ~2 s per GiB on first touch, then ~12 GiB/s): both shapes then run warm."""
    block = np.ones(int(gib * 2**30) // 8)
    del block


def generate_twin(
    days: float, seed: int = 0
) -> tuple[SeriesRegistry, npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The same shape from the twin's very-large preset (20 servers); lost messages as NaN."""
    from rackwatch.twin import Twin

    twin = Twin("very-large", seed=seed, start_ms=T0_MS)
    frame = twin.run(int(days * DAY_S * 1000 / twin.step_ms))
    registry = SeriesRegistry(twin.series_keys)
    values = frame.values.copy()
    if frame.absent is not None:
        values[frame.absent] = np.nan  # keeps the grid shape; the bench measures the store
    ids = np.arange(len(twin.series_keys), dtype=np.int32)
    return registry, ids, frame.ts.astype(np.int64), values


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ingest(
    path: Path,
    registry: SeriesRegistry,
    ids: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    grid: npt.NDArray[np.float64],
    steps_per_write: int,
    clock: Callable[[], int],
    flush_rows: int | None,
) -> tuple[float, float]:
    """(seconds for the writes, seconds for the writes and close)."""
    n, n_series = grid.shape
    ts_grid = np.broadcast_to(ts[:, None], grid.shape)
    tiled = np.tile(ids, steps_per_write)
    options = {} if flush_rows is None else {"flush_rows": flush_rows}
    store = DuckDBStore(path, registry, clock=clock, **options)  # type: ignore[arg-type]
    start = time.perf_counter()
    for a in range(0, n, steps_per_write):
        b = min(n, a + steps_per_write)
        k = (b - a) * n_series
        store.write(
            Batch(
                np.ascontiguousarray(ts_grid[a:b]).reshape(-1),
                tiled[:k] if k < len(tiled) else tiled,
                grid[a:b].reshape(-1),
            )
        )
    writes = time.perf_counter() - start
    store.close()
    return writes, time.perf_counter() - start


def _table_bytes(store: DuckDBStore) -> dict[str, int]:
    """Bytes of each table's column segments, from the block offsets in pragma_storage_info."""
    con = store._con
    rows = []
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        rows += [
            (table, *r)
            for r in con.execute(
                f"""SELECT block_id, block_offset, len(additional_block_ids)
                    FROM pragma_storage_info('{table}') WHERE block_id >= 0"""
            ).fetchall()
        ]
    rows.sort(key=lambda r: (r[1], r[2]))
    (block,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone() or (0,)
    out: dict[str, int] = {}
    for i, (table, block_id, offset, extra) in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][1] == block_id else None
        size = (nxt[2] if nxt else block) - offset + extra * block
        out[table] = out.get(table, 0) + size
    return out


def _table_rows(store: DuckDBStore) -> dict[str, int]:
    con = store._con
    return {
        t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
        for t in ("raw", "raw_recent", "rollup_1m", "rollup_1m_recent", "rollup_1h")
    }


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _projection(per_row: dict[str, float]) -> None:
    """Disk per series under the default retention (raw 7 d of 5 s samples, 1m 90 d, 1h 5 y)
    at the bytes per row just measured."""
    retention = Retention()
    tiers = (
        ("raw", per_row["raw"], retention.raw_ms // STEP_MS),
        ("1m", per_row["rollup_1m"], retention.m1_ms // 60_000),
        ("1h", per_row["rollup_1h"], retention.h1_ms // 3_600_000),
    )
    total = sum(b * n for _, b, n in tiers)
    parts = ", ".join(f"{name} {b * n / 2**10:.0f} KiB ({n:,} rows)" for name, b, n in tiers)
    print(
        f"projection, default retention, per series sampled every 5 s: {total / 2**20:.2f} MiB "
        f"({parts}); 1000 series: {total * 1000 / 2**30:.2f} GiB"
    )


def _median_ms(fn: Callable[[], QueryResult], runs: int) -> tuple[float, QueryResult]:
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7, help="query repetitions (median)")
    parser.add_argument(
        "--source", choices=("synthetic", "twin"), default="synthetic", help="data generator"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores")
    parser.add_argument("--pretouch-gib", type=float, default=3.0, help="0 to skip")
    parser.add_argument(
        "--flush-rows", type=int, default=None, help="the store's flush_rows (default: its own)"
    )
    args = parser.parse_args()
    if args.pretouch_gib:
        _pretouch(args.pretouch_gib)

    base = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    start = time.perf_counter()
    if args.source == "twin":
        registry, ids, ts, grid = generate_twin(args.days)
        what = "twin very-large (20 servers)"
    else:
        registry, ids, ts, grid = generate(args.servers, args.days)
        what = f"synthetic, {args.servers} servers x {grid.shape[1] // args.servers} series"
    n_samples = grid.size
    print(
        f"data: {what} = {grid.shape[1]} series, {len(ts)} steps of 5 s ({args.days:g} days) "
        f"= {n_samples / 1e6:.2f} M samples, {np.isnan(grid).mean():.2%} NaN "
        f"(generated in {time.perf_counter() - start:.1f} s)"
    )
    end_ms = int(ts[-1]) + STEP_MS

    def clock() -> int:
        return end_ms

    try:
        path = base / "store"
        for steps in (1, 720):
            shutil.rmtree(path, ignore_errors=True)
            peak_known = _reset_peak()
            before = _status_mib("VmRSS")
            writes, total = _ingest(path, registry, ids, ts, grid, steps, clock, args.flush_rows)
            peak = _status_mib("VmHWM")
            print(
                f"ingest, {steps:>3} step(s) x {grid.shape[1]} series per write: "
                f"{n_samples / total / 1e6:.2f} M samples/s incl. close "
                f"({n_samples / writes / 1e6:.2f} M/s for the writes alone; {total:.2f} s); "
                f"peak RSS {peak:.0f} MiB, {peak - before:+.0f} MiB over the process before "
                f"(which holds the {grid.nbytes / 2**20:.0f} MiB of data)"
                f"{'' if peak_known else ' [process peak: VmHWM could not be reset]'}"
            )

        directory = _dir_bytes(path)  # after close: database file and log, as a user has them
        store = DuckDBStore(path, SeriesRegistry(), clock=clock)
        store.checkpoint()
        stats = store.stats()
        db_file = os.path.getsize(store.db_path)
        tables = _table_bytes(store)
        rows = _table_rows(store)
        print(
            f"at rest: the data directory {directory / 2**20:.1f} MiB = "
            f"{directory / n_samples:.3f} B/sample with every tier (database file "
            f"{db_file / 2**20:.1f} MiB, used blocks {stats.used_bytes / n_samples:.3f} "
            f"B/sample, log {directory - db_file} bytes)"
        )
        per_row = {}
        tiers = {
            "raw": ("raw", "raw_recent"),
            "rollup_1m": ("rollup_1m", "rollup_1m_recent"),
            "rollup_1h": ("rollup_1h",),
        }
        for tier, parts in tiers.items():
            size = sum(tables.get(p, 0) for p in parts)
            n_rows = sum(rows[p] for p in parts)
            per_row[tier] = size / max(n_rows, 1)
            detail = ""
            if len(parts) > 1:
                detail = (
                    " ("
                    + "; ".join(
                        f"{p} {rows[p]} rows, {tables.get(p, 0) / max(rows[p], 1):.2f} B/row"
                        for p in parts
                    )
                    + ")"
                )
            print(
                f"  tier {tier}: {n_rows} rows, {size / 2**20:.2f} MiB, "
                f"{per_row[tier]:.2f} B/row{detail}"
            )
        other = sum(v for k, v in tables.items() if not any(k in p for p in tiers.values()))
        print(f"  other tables (series, events, latest, meta…): {other / 2**10:.0f} KiB")
        _projection(per_row)

        start_ms = int(ts[0])
        _reset_peak()
        for label, step in (("1h", 3_600_000), ("1m", 60_000)):
            q = Query(start_ms, end_ms, step_ms=step)
            ms, result = _median_ms(partial(store.query, q), args.runs)
            print(
                f"query {label} OHLC, {args.days:g} days x {len(result.keys)} series: "
                f"{ms:.1f} ms median of {args.runs} ({len(result)} rows, tier {result.tier})"
            )
        print(f"  peak RSS during the OHLC queries {_status_mib('VmHWM'):.0f} MiB")
        _reset_peak()
        ms, _ = _median_ms(partial(store.query, Query(start_ms, end_ms)), 1)
        print(
            f"query raw, all series, whole range: {ms:.0f} ms ({n_samples / 1e6:.1f} M rows; "
            f"peak RSS {_status_mib('VmHWM'):.0f} MiB)"
        )
        store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
