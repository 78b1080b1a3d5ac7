"""The figures of `rackwatch report --period day`, computed by Spark from rackwatch's Parquet
archive (docs/ARCHIVE.md): the batch side of seed 004, for a room too large for one machine.

    spark-submit examples/spark/daily_report.py ARCHIVE 2026-11-23 [--timezone Europe/Paris]
    python examples/spark/daily_report.py ARCHIVE 2026-11-23 --out day.json   # local mode

ARCHIVE is the folder `rackwatch export --format parquet --step 1m` wrote (it holds
`tier=1m/date=…/metric=…/part-0.parquet`). The day is local to `--timezone` (UTC by default),
as the report's is; it is read from the 1-minute tier, as the report reads it. Printed (or
written to --out) as JSON with the report's own keys and definitions (docs/REPORTS.md):

- `metrics`: per metric, n_series, n_readings, average (every reading), median (of the
  1-minute bucket averages), min, max;
- `cpu`: average, busiest_hour, by_hour, busiest_server, idlest_server;
- `servers`: per machine, cpu_average, cpu_max, memory_used_bytes, power_watts, energy_kwh,
  network_up_bytes, network_down_bytes;
- `memory`, `network`, and `gpu`'s fleet idle rates.

Self-contained: it needs pyspark only, not rackwatch (Spark's executors need nothing more).
The machines and their parts are chosen from the series names as rackwatch's report chooses
them (engine/reports/scope.py); a test (tests/integration/test_spark_archive.py) checks that
the figures equal the report's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

TIER = "1m"
WIDTH_S = 60.0
"""The 1-minute tier's bucket width: network volumes and energy are average x width."""
J_PER_KWH = 3.6e6
FREE_THRESHOLD_BYTES = 8 * 1024**3
LOW_USE_THRESHOLD_RATIO = 0.10
MACHINE_METRIC = "cpu_utilization_ratio"
SCOPES = {
    "cpu_utilization_ratio": "machine",
    "memory_utilization_ratio": "machine",
    "memory_used_bytes": "machine",
    "disk_utilization_ratio": "part",
    "disk_used_bytes": "part",
    "network_receive_bytes_per_second": "part",
    "network_transmit_bytes_per_second": "part",
    "gpu_utilization_ratio": "gpu",
    "gpu_memory_utilization_ratio": "gpu",
    "gpu_memory_used_bytes": "gpu",
    "gpu_memory_free_bytes": "gpu",
    "gpu_power_watts": "gpu",
    "gpu_temperature_celsius": "gpu",
    "power_watts": "machine",
    "cpu_temperature_celsius": "machine",
    "inlet_temperature_celsius": "machine",
}
"""The report's metrics (in its order) and the scope each is read at (scope.py)."""


# --------------------------------------------------------------------------- the series


def ancestors(entity: str) -> list[str]:
    """`a/b/c` -> [`a/b`, `a`]."""
    parts = entity.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def select(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """(entity, metric, machine, part) of the report's series among (entity, metric) keys:
    a machine has the CPU metric and no ancestor with it; `machine` metrics are the
    machine's own series, `gpu` ones its cards', `part` ones its own if it has one, else its
    parts' (disks, NICs)."""
    keys = sorted(k for k in set(keys) if k[1] in SCOPES)
    having = {e for e, m in keys if m == MACHINE_METRIC}
    machines = {e for e in having if not any(a in having for a in ancestors(e))}
    placed: list[tuple[str, str, str]] = []
    own: set[tuple[str, str]] = set()
    for entity, metric in keys:
        machine = entity if entity in machines else None
        if machine is None:
            machine = next((a for a in ancestors(entity) if a in machines), None)
        if machine is None:
            continue
        is_own = entity == machine
        scope = SCOPES[metric]
        if (scope == "machine" and not is_own) or (scope == "gpu" and is_own):
            continue
        if is_own:
            own.add((machine, metric))
        placed.append((entity, metric, machine))
    return [
        (entity, metric, machine, entity)
        for entity, metric, machine in placed
        if entity == machine or (machine, metric) not in own
    ]


# --------------------------------------------------------------------------- the day


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the local day in epoch ms."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def read_day(spark: SparkSession, archive: str, start_ms: int, end_ms: int) -> DataFrame:
    """The 1-minute buckets of the report's metrics in [start_ms, end_ms), with a value.
    Only the UTC date partitions the local day touches are listed."""
    first = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).date()
    last = dt.datetime.fromtimestamp((end_ms - 1) / 1000, dt.UTC).date()
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    root = archive.rstrip("/")
    paths = [f"{root}/tier={TIER}/date={d.isoformat()}" for d in dates]
    jvm_fs = spark.sparkContext._jvm.org.apache.hadoop.fs  # type: ignore[union-attr]
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    there = [p for p in paths if jvm_fs.Path(p).getFileSystem(conf).exists(jvm_fs.Path(p))]
    if not there:
        raise SystemExit(f"no 1-minute data in {root} for {', '.join(map(str, dates))}")
    frame = spark.read.option("basePath", root).parquet(*there)
    return frame.where(
        (F.col("ts") >= start_ms)
        & (F.col("ts") < end_ms)
        & F.col("metric").isin(list(SCOPES))
        & (F.col("count") > 0)  # a bucket with no reading has no average (null)
    )


def _ratio(total: float | None, n: float | None) -> float | None:
    return None if total is None or not n else float(total) / float(n)


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def daily_report(
    spark: SparkSession, archive: str, day: dt.date, zone: ZoneInfo | None = None
) -> dict[str, Any]:
    """The day's figures (the report's keys). Spark scans the buckets four times (per series,
    medians, fleet per bucket, CPU per hour); Python combines the few rows that come back."""
    zone = zone or ZoneInfo("UTC")
    spark.conf.set("spark.sql.session.timeZone", zone.key)  # hour(): the local hour
    start_ms, end_ms = day_bounds(day, zone)
    buckets = read_day(spark, archive, start_ms, end_ms).withColumn(
        "total", F.col("avg") * F.col("count")
    )
    per_series = {
        (r["entity"], r["metric"]): r
        for r in buckets.groupBy("entity", "metric")
        .agg(
            F.sum("count").alias("n"),
            F.sum("total").alias("total"),
            F.min("low").alias("low"),
            F.max("high").alias("high"),
            F.sum("avg").alias("sum_avg"),
            F.count("*").alias("n_buckets"),
            F.count_if(F.col("avg") > FREE_THRESHOLD_BYTES).alias("n_free_over"),
            F.count_if(F.col("avg") < LOW_USE_THRESHOLD_RATIO).alias("n_low_use"),
        )
        .collect()
    }
    rows = select(per_series)
    chosen = spark.createDataFrame(
        rows or [("", "", "", "")],  # nothing chosen: a row that matches no bucket
        "entity string, metric string, machine string, part string",
    )
    b = buckets.join(F.broadcast(chosen), ["entity", "metric"])

    by_metric: dict[str, list[Any]] = defaultdict(list)
    by_machine: dict[tuple[str, str], list[Any]] = defaultdict(list)
    by_part: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for entity, metric, machine, part in rows:
        stats = per_series[(entity, metric)]
        by_metric[metric].append(stats)
        by_machine[(machine, metric)].append(stats)
        by_part[(part, metric)].append(stats)

    def average(of: list[Any]) -> float | None:
        return _ratio(sum(s["total"] for s in of), sum(s["n"] for s in of)) if of else None

    def volume(of: list[Any]) -> float | None:
        return sum(s["sum_avg"] for s in of) * WIDTH_S if of else None

    def total_of_means(of: list[Any]) -> float | None:
        return sum(s["total"] / s["n"] for s in of) if of else None

    def highest(of: list[Any]) -> float | None:
        return max(s["high"] for s in of) if of else None

    medians = {
        r["metric"]: r["median"]
        for r in b.groupBy("metric").agg(F.median("avg").alias("median")).collect()
    }
    metrics = [
        {
            "metric": name,
            "n_series": len(of),
            "n_readings": sum(s["n"] for s in of),
            "average": average(of),
            "median": medians.get(name),
            "min": min(s["low"] for s in of),
            "max": highest(of),
        }
        for name in SCOPES
        if (of := by_metric.get(name))
    ]

    servers: list[dict[str, Any]] = []
    for machine in sorted({m for _, _, m, _ in rows}):

        def mine(metric: str, machine: str = machine) -> list[Any]:
            return by_machine.get((machine, metric), [])

        energy_j = volume(mine("power_watts"))
        servers.append(
            {
                "entity": machine,
                "cpu_average": average(mine(MACHINE_METRIC)),
                "cpu_max": highest(mine(MACHINE_METRIC)),
                "memory_used_bytes": total_of_means(mine("memory_used_bytes")),
                "power_watts": total_of_means(mine("power_watts")),
                "energy_kwh": None if energy_j is None else energy_j / J_PER_KWH,
                "network_up_bytes": volume(mine("network_transmit_bytes_per_second")),
                "network_down_bytes": volume(mine("network_receive_bytes_per_second")),
            }
        )

    # Fleet per bucket: the sum of the series' averages (network peaks, memory in use).
    fleet = {
        r["metric"]: r
        for r in b.groupBy("metric", "ts")
        .agg(F.sum("avg").alias("sum_means"))
        .groupBy("metric")
        .agg(F.max("sum_means").alias("peak"), F.avg("sum_means").alias("mean"))
        .collect()
    }

    def fleet_of(metric: str, what: str) -> float | None:
        r = fleet.get(metric)
        return None if r is None else float(r[what])

    by_hour: list[dict[str, Any]] = [
        {"hour": int(r["hour"]), "value": _ratio(r["total"], r["n"])}
        for r in b.where(F.col("metric") == MACHINE_METRIC)
        .groupBy(F.hour(F.timestamp_millis(F.col("ts"))).alias("hour"))
        .agg(F.sum("total").alias("total"), F.sum("count").alias("n"))
        .orderBy("hour")
        .collect()
    ]
    busiest_hour = None
    if by_hour:
        top = max(by_hour, key=lambda h: (h["value"], -h["hour"]))
        label = f"{top['hour']:02d}:00-{(top['hour'] + 1) % 24:02d}:00"
        busiest_hour = {"hour": top["hour"], "label": label, MACHINE_METRIC: top["value"]}
    cpu = [(s["cpu_average"], s["entity"]) for s in servers if s["cpu_average"] is not None]
    busiest = min(cpu, key=lambda x: (-x[0], x[1]), default=None)  # ties: the first by name
    idlest = min(cpu, key=lambda x: (x[0], x[1]), default=None)

    # A card is idle in a bucket whose average free memory is above 8 GiB, or whose average
    # memory use is under 10 %; its rate is the share of its buckets that were.
    cards = sorted({part for _, metric, _, part in rows if SCOPES[metric] == "gpu"})

    def rate(card: str, metric: str, hits: str) -> float | None:
        of = by_part.get((card, metric), [])
        return _ratio(sum(s[hits] for s in of), sum(s["n_buckets"] for s in of)) if of else None

    return {
        "date": day.isoformat(),
        "timezone": zone.key,
        "tier": TIER,
        "metrics": metrics,
        "cpu": {
            "average": average(by_metric.get(MACHINE_METRIC, [])),
            "busiest_hour": busiest_hour,
            "by_hour": by_hour,
            "busiest_server": None
            if busiest is None
            else {"entity": busiest[1], "value": busiest[0]},
            "idlest_server": None if idlest is None else {"entity": idlest[1], "value": idlest[0]},
        },
        "memory": {
            "average_utilization_ratio": average(by_metric.get("memory_utilization_ratio", [])),
            "average_used_bytes": _mean(s["memory_used_bytes"] for s in servers),
            "total_used_bytes": fleet_of("memory_used_bytes", "mean"),
        },
        "network": {
            "up_bytes": volume(by_metric.get("network_transmit_bytes_per_second", [])),
            "down_bytes": volume(by_metric.get("network_receive_bytes_per_second", [])),
            "peak_up_bytes_per_second": fleet_of("network_transmit_bytes_per_second", "peak"),
            "peak_down_bytes_per_second": fleet_of("network_receive_bytes_per_second", "peak"),
        },
        "gpu": {
            "n_cards": len(cards),
            "gpu_idle_rate": _mean(rate(c, "gpu_memory_free_bytes", "n_free_over") for c in cards),
            "gpu_low_memory_rate": _mean(
                rate(c, "gpu_memory_utilization_ratio", "n_low_use") for c in cards
            ),
        },
        "servers": servers,
    }


def session(app_name: str = "rackwatch-daily-report") -> SparkSession:
    """The Spark session: spark-submit's, or a small local one under plain `python`."""
    builder = SparkSession.builder.appName(app_name)
    if "pyspark.shell" not in sys.modules and not SparkSession.getActiveSession():
        builder = (
            builder.master("local[*]")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", help="the folder rackwatch export --format parquet wrote")
    parser.add_argument("date", type=dt.date.fromisoformat, help="the local day, YYYY-MM-DD")
    parser.add_argument("--timezone", default="UTC", help="the site's time zone (default UTC)")
    parser.add_argument("--out", help="write the JSON here instead of printing it")
    args = parser.parse_args(argv)
    spark = session()
    try:
        figures = daily_report(spark, args.archive, args.date, ZoneInfo(args.timezone))
    finally:
        spark.stop()
    text = json.dumps(figures, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
