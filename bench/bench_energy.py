"""Energy accounting benchmark: `account` over a month of 1-hour data, and the live accountant's
cost per telemetry step.

    python bench/bench_energy.py [--servers 2000] [--days 31] [--runs 3] [--dir DIR]

Data, written into a fresh DuckDBStore in a temporary directory (removed at the end): per
server `power_watts`, and 2 fans each with `fan_power_watts` and `fan_level`; a PDU per rack
of 42 servers; the room's `it_power_watts` and `facility_power_watts`. One sample per series
and hour (the 1-hour tier's grain; the 1-minute tier then holds one row per hour too) for
`--days` days, 1 in 500 missing. For 2,000 servers: about 10,050 series, 7.5 M samples.

Timed (median of `--runs`, wall and CPU seconds): `account` over the whole range (whole
hours from the 1-hour tier, the edge minutes from the 1-minute tier) per site, rack and
server; over the last day (1-minute tier). Hourly samples (the default) are the accounting's
worst case: read once per bucket, every series takes the sparse path (the median step
between buckets, a window over every row); `--per-hour 2` takes the dense path real 5 s
data takes (readings per bucket), at twice the samples to write.
Then `LiveEnergy.update` on one step of a twin-like batch (every series of 2,000 servers,
26,000 samples), the work added to the event loop per step.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rackwatch.engine.energy import LiveEnergy, Membership, Tariff, TariffPeriod, account
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import EntityRecord, Retention
from rackwatch.store.duckdb import DuckDBStore

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
T0_MS = 1_795_392_000_000  # 2026-11-23 00:00 UTC
RACK = 42
TARIFF = Tariff(
    0.15,
    periods=(TariffPeriod("peak", 0.25, ("mon", "tue", "wed", "thu", "fri"), (8, 20)),),
    timezone="Europe/Paris",
)


def keys_of(n_servers: int) -> tuple[list[tuple[str, str]], list[EntityRecord]]:
    keys: list[tuple[str, str]] = []
    racks: set[str] = set()
    for s in range(n_servers):
        rack = f"c{s // (RACK * 20) + 1:02d}/r{s // RACK % 20 + 1:02d}"
        server = f"{rack}/s{s % RACK + 1:02d}"
        racks.add(rack)
        keys.append((server, "power_watts"))
        for f in (1, 2):
            keys += [(f"{server}/fan{f}", "fan_power_watts"), (f"{server}/fan{f}", "fan_level")]
    keys += [(f"{rack}/pdu", "pdu_power_watts") for rack in sorted(racks)]
    keys += [("room", "it_power_watts"), ("room", "facility_power_watts")]
    inventory = [EntityRecord("room", "room")]
    inventory += [EntityRecord(rack, "rack") for rack in sorted(racks)]
    return keys, inventory


def values_of(keys: list[tuple[str, str]], n_servers: int, rng: np.random.Generator) -> np.ndarray:
    """One hour's values of every series: servers 150-350 W, fans at medium (4.1 W)."""
    out = np.empty(len(keys))
    metric = np.array([m for _, m in keys])
    server = metric == "power_watts"
    out[server] = rng.uniform(150, 350, server.sum())
    out[metric == "fan_power_watts"] = 4.1
    out[metric == "fan_level"] = 2.0
    out[metric == "pdu_power_watts"] = 250.0 * RACK
    out[metric == "it_power_watts"] = 250.0 * n_servers
    out[metric == "facility_power_watts"] = 250.0 * n_servers * 1.4
    return out


def fill(path: Path, n_servers: int, days: int, per_hour: int) -> tuple[DuckDBStore, float]:
    keys, inventory = keys_of(n_servers)
    registry = SeriesRegistry()
    ids = registry.intern_many(keys)
    end = T0_MS + days * DAY_MS
    store = DuckDBStore(
        path, registry, clock=lambda: end, retention=Retention(raw_ms=(days + 1) * DAY_MS)
    )
    store.upsert_inventory(inventory)
    rng = np.random.default_rng(0)
    began = time.perf_counter()
    for day in range(days):
        hours = T0_MS + day * DAY_MS + np.arange(24 * per_hour) * (HOUR_MS // per_hour)
        grid = np.stack([values_of(keys, n_servers, rng) for _ in hours])
        batch = Batch.from_grid(hours, ids, grid)
        store.write(batch.take(rng.random(len(batch)) >= 0.002))
    store.flush()
    return store, time.perf_counter() - began


def timed(fn: Callable[[], object], runs: int) -> str:
    """Median wall and CPU seconds (CPU: every thread of this process, DuckDB's included; it
    holds when other processes share the machine, which the wall time does not)."""
    wall, cpu = [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return f"{statistics.median(wall):.2f} s wall, {statistics.median(cpu):.2f} s CPU (median)"


def live_step_ms(n_servers: int, runs: int) -> float:
    """`LiveEnergy.update` per step of a batch shaped as the twin's: 13 series per server."""
    registry = SeriesRegistry()
    keys: list[tuple[str, str]] = []
    for s in range(n_servers):
        server = f"c01/r{s // RACK + 1:02d}/s{s % RACK + 1:02d}"
        keys += [(server, m) for m in ("cpu_temperature_celsius", "inlet_temperature_celsius")]
        keys += [(server, m) for m in ("chassis_temperature_celsius", "power_watts")]
        keys += [(server, m) for m in ("airflow_cfm", "cpu_utilization_ratio", "disk_ok")]
        for f in (1, 2):
            keys += [(f"{server}/fan{f}", m) for m in ("fan_level", "fan_rpm", "fan_power_watts")]
    ids = registry.intern_many(keys)
    live = LiveEnergy(registry, TARIFF, membership=Membership())
    values = np.random.default_rng(1).uniform(0, 300, len(ids))
    seconds = []
    for step in range(max(runs, 20)):
        batch = Batch.from_grid([T0_MS + step * 5000], ids, values[None, :])
        began = time.perf_counter()
        live.update(batch)
        seconds.append(time.perf_counter() - began)
    return 1000 * statistics.median(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument(
        "--per-hour", type=int, default=1, help="samples per series and hour (2: the dense path)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary store goes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-energy-", dir=args.dir))
    try:
        store, fill_s = fill(work / "store", args.servers, args.days, args.per_hour)
        stats = store.stats()
        print(
            f"data: {args.servers} servers, {stats.n_series} series, {args.days} days, "
            f"{args.per_hour} sample(s) per series and hour ({stats.n_rollup_1h_rows:,} 1-hour "
            f"rows), written in {fill_s:.1f} s"
        )
        start = T0_MS + 30 * 60_000  # edges in minutes, the rest in hours
        end = T0_MS + args.days * DAY_MS - 30 * 60_000
        for group in ("site", "rack", "server"):
            figures = timed(
                lambda g=group: account(store, start, end, group=g, tariff=TARIFF, pue=1.4),
                args.runs,
            )
            print(f"account, {args.days} days, group={group:<6}: {figures}")
        report = account(store, start, end, group="site", tariff=TARIFF)
        print(
            f"  site: {report.energy_kwh:,.0f} kWh measured, coverage "
            f"{100 * (report.coverage or 0):.2f} %, cost {report.cost:,.0f} {report.currency}, "
            f"PUE {report.pue:.2f}, tiers {[t.tier for t in report.tiers]}"
        )
        day = T0_MS + (args.days - 1) * DAY_MS
        figures = timed(lambda: account(store, day, day + DAY_MS, tariff=TARIFF), args.runs)
        print(f"account, last day (1-minute tier), group=site: {figures}")
        store.close()
        print(
            f"live accountant, one step of {args.servers} servers (13 series each): "
            f"{live_step_ms(args.servers, args.runs):.2f} ms (median)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
