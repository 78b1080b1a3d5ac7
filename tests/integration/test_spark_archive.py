"""Spark reads the Parquet archive (issue 13): `examples/spark/daily_report.py`, run by PySpark
in local mode over an exported archive, gives the figures of `rackwatch report --period day`;
DuckDB reads the same archive with Hive partitioning and gets the store's rows.

A small twin (3 hours of the small room on a UTC day) plus a few series the twin does not
make (memory, a NIC, a GPU card per server), so that every figure the job computes is met.
Skipped, saying why, where pyspark or Java is missing (`pip install pyspark`; Java 17).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import math
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest

from rackwatch import app
from rackwatch.engine.reports import build_report, period_of
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.store.archive import export_parquet
from rackwatch.store.base import DAY_MS, Query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.date(2026, 1, 1)
START = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
HOURS = 2
JOB = Path(__file__).parents[2] / "examples" / "spark" / "daily_report.py"
GIB = 1024**3


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install pyspark)"
    if shutil.which("java") is None:
        return "Java is not installed (Spark needs a JVM: apt-get install openjdk-17-jre-headless)"
    return None


def _extra_series(registry: SeriesRegistry, machines: list[str]) -> Batch:
    """Memory, a NIC and a GPU card for each machine, a reading every 5 s, with GPU memory
    around the idle thresholds so that both idle rates are neither 0 nor 1."""
    rng = np.random.default_rng(13)
    ts = START + np.arange(HOURS * 720, dtype=np.int64) * 5_000
    plan = []
    for i, m in enumerate(machines):
        plan += [
            (m, "memory_used_bytes", 40 * GIB + i * GIB, 2 * GIB),
            (m, "memory_utilization_ratio", 0.4 + 0.05 * i, 0.05),
            (f"{m}/net-eth0", "network_transmit_bytes_per_second", 2e6 * (i + 1), 4e5),
            (f"{m}/net-eth0", "network_receive_bytes_per_second", 5e6, 1e6),
            (f"{m}/gpu0", "gpu_utilization_ratio", 0.5, 0.2),
            (f"{m}/gpu0", "gpu_memory_free_bytes", 8 * GIB + (i - 2) * GIB / 4, GIB / 2),
            (f"{m}/gpu0", "gpu_memory_utilization_ratio", 0.08 + 0.01 * i, 0.03),
        ]
    ids = np.asarray([registry.intern(e, metric) for e, metric, _, _ in plan], np.int32)
    values = np.stack([np.round(rng.normal(mu, sd, len(ts)), 3) for _, _, mu, sd in plan], axis=1)
    return Batch.from_grid(ts, ids, values)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The twin's store, its day report (as JSON data), its exported 1-minute archive and the
    1-minute rows the store answers."""
    root = tmp_path_factory.mktemp("spark")
    data, archive = root / "data", root / "archive"
    settings = load_settings(data_dir=data, twin={"scenario": "small", "seed": 3})
    app.simulate(settings, duration_s=HOURS * 3600, out=data, start_ms=START)
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(settings, registry)) as store:
        machines = sorted(
            {k.entity for k in list(registry.keys()) if k.metric == "cpu_utilization_ratio"}
        )
        store.write(_extra_series(registry, machines))
        store.flush()
        report = build_report(store, period_of("day", DAY, ZoneInfo("UTC")), now_ms=0)
        written = export_parquet(store, START, START + DAY_MS, archive, tiers=["1m"])
        again = export_parquet(store, START, START + DAY_MS, archive, tiers=["1m"])
        rows = store.query(Query(START, START + DAY_MS, tier="1m"))
    return {
        "report": report.to_dict(),
        "archive": archive,
        "written": written,
        "again": again,
        "rows": rows,
    }


# --------------------------------------------------------------------------- DuckDB


def test_duckdb_reads_the_archive_hive_style_and_gets_the_stores_rows(
    made: dict[str, Any],
) -> None:
    archive, rows = made["archive"], made["rows"]
    assert made["again"] == made["written"]  # exported twice: the same files, not more
    found = duckdb.execute(
        f"""SELECT tier, "date"::VARCHAR, metric, entity, ts, avg, count, missing
            FROM read_parquet('{archive}/**/*.parquet', hive_partitioning = true)
            ORDER BY entity, metric, ts"""
    ).fetchall()
    expected = []
    for i, key in enumerate(rows.keys):
        lo, hi = int(rows.offsets[i]), int(rows.offsets[i + 1])
        for j in range(lo, hi):
            avg = float(rows.columns["avg"][j])
            expected.append(
                (
                    "1m",
                    "2026-01-01",
                    key.metric,
                    key.entity,
                    int(rows.ts[j]),
                    None if math.isnan(avg) else avg,
                    int(rows.columns["count"][j]),
                    int(rows.columns["missing"][j]),
                )
            )
    expected.sort(key=lambda r: (r[3], r[2], r[4]))
    assert len(found) == len(rows) > 0
    assert found == expected


# --------------------------------------------------------------------------- Spark


def _load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("daily_report", JOB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["daily_report"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    why = _spark_missing()
    if why is not None:
        pytest.skip(why)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("rackwatch-test")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.adaptive.enabled", "false")  # small data: planning costs more
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def close(a: Any, b: Any, where: str) -> None:
    """Equal figures: floats within 1e-9 (relative), everything else exactly."""
    if isinstance(a, dict):
        for key in a:
            close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_the_spark_job_gives_the_daily_reports_figures(spark: Any, made: dict[str, Any]) -> None:
    job = _load_job()
    got = job.daily_report(spark, str(made["archive"]), DAY, ZoneInfo("UTC"))
    want = made["report"]

    keys = ("metric", "n_series", "n_readings", "average", "median", "min", "max")
    assert [m["metric"] for m in got["metrics"]] == [m["metric"] for m in want["metrics"]]
    assert len(got["metrics"]) == 11  # the twin's 4 and the 7 added
    for mine, theirs in zip(got["metrics"], want["metrics"], strict=True):
        close({k: theirs[k] for k in keys}, mine, mine["metric"])

    cpu = want["cpu"]
    for key in ("average", "busiest_hour", "busiest_server", "idlest_server"):
        close(cpu[key], got["cpu"][key], f"cpu.{key}")
    known_hours = [h for h in cpu["by_hour"] if h["value"] is not None]
    assert len(known_hours) == HOURS
    for theirs, mine in zip(known_hours, got["cpu"]["by_hour"], strict=True):
        close(theirs, mine, "cpu.by_hour")

    close(want["memory"], got["memory"], "memory")
    close(want["network"], got["network"], "network")
    assert want["network"]["up_bytes"] is not None
    for key in ("n_cards", "gpu_idle_rate", "gpu_low_memory_rate"):
        close(want["gpu"][key], got["gpu"][key], f"gpu.{key}")
    assert 0 < want["gpu"]["gpu_idle_rate"] < 1 and 0 < want["gpu"]["gpu_low_memory_rate"] < 1

    servers = {s["entity"]: s for s in want["servers"]}
    assert sorted(servers) == [s["entity"] for s in got["servers"]] and len(servers) == 5
    for mine in got["servers"]:
        theirs = servers[mine["entity"]]
        close({k: theirs[k] for k in mine}, mine, mine["entity"])
