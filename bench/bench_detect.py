"""Anomaly scoring throughput and memory at 20 and 2,000 servers, and `rackwatch detect` on a
300,000-row CSV.

    python bench/bench_detect.py             # both room sizes and the CSV
    python bench/bench_detect.py --servers 20 --no-csv
    python bench/bench_detect.py --servers --no-csv --quality   # detection on the twin only

For each room (the twin's very-large preset: 20 servers per cluster, 1 or 100 clusters) the
twin's batches are made first, then scored by every detector: the per-series
`AnomalyDetector` on all series and the `ResidualScorer` (CPU temperature against load and
air) fitted on the first ten minutes. "live" scores one batch per 5-s step, as
`rackwatch run` would; "bulk" scores a block of steps in one batch (catching up, replays).
CPU time is the thread's own (`time.thread_time`), so other processes on the machine do not
inflate it; the share of one core needed in real time is CPU per step over 5 s. Memory: the
detectors' state arrays, the tracemalloc peak of one live step, and the process's max RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from rackwatch.engine.anomaly import AnomalyDetector, ResidualModel, ResidualScorer
from rackwatch.engine.anomaly.csvscore import detect_csv
from rackwatch.model import SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin
from rackwatch.twin.faults import ScheduledFault

STEP_S = 5.0
FIT_STEPS = 120
LIVE_STEPS = 120
BULK_STEPS = 120
CSV_ROWS = 300_000


def room(clusters: int) -> None:
    registry = SeriesRegistry()
    source = TwinSource(Twin("very-large", clusters=clusters, seed=0), registry)
    n_servers = source.twin.topology.n_servers
    history, _ = source.read(FIT_STEPS)
    live = [source.read(1)[0] for _ in range(LIVE_STEPS)]
    bulk, _ = source.read(BULK_STEPS)
    n_series = len(registry)

    start = time.thread_time()
    model = ResidualModel.fit(history, registry)
    fit_cpu = time.thread_time() - start
    detector = AnomalyDetector()
    residual = ResidualScorer(model, registry)
    detector.score(history)
    residual.score(history)

    per_step = []
    for batch in live:
        start = time.thread_time()
        detector.score(batch)
        residual.score(batch)
        per_step.append(time.thread_time() - start)
    samples = sum(len(b) for b in live)
    median = statistics.median(per_step)
    p95 = float(np.percentile(per_step, 95))
    start = time.thread_time()
    detector.score(bulk)
    residual.score(bulk)
    bulk_cpu = time.thread_time() - start

    tracemalloc.start()
    step, _ = source.read(1)
    detector.score(step)
    residual.score(step)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    state = detector.state.nbytes + residual.state.nbytes + residual._features.state.nbytes

    print(
        f"{n_servers:5d} servers, {n_series:6d} series, {len(model.entities)} residual devices "
        f"(fit on {FIT_STEPS} steps: {fit_cpu * 1e3:.0f} ms CPU)"
    )
    print(
        f"  live, one batch per step: {median * 1e3:7.2f} ms CPU per step (p95 "
        f"{p95 * 1e3:.2f}) = {samples / sum(per_step) / 1e6:5.2f} M samples/s; "
        f"real time at {STEP_S:g} s steps needs {100 * median / STEP_S:.2f} % of one core"
    )
    print(
        f"  bulk, {BULK_STEPS} steps per batch: {len(bulk) / bulk_cpu / 1e6:5.2f} M samples/s "
        f"({bulk_cpu:.2f} s CPU for {len(bulk):,} samples)"
    )
    print(
        f"  memory: state {state / 2**20:.1f} MiB ({state / n_series:.0f} B per series), "
        f"tracemalloc peak of one live step {peak / 2**20:.1f} MiB"
    )


def csv_case(rows: int) -> None:
    rng = np.random.default_rng(0)
    values = 20.0 + np.sin(np.arange(rows) / 500.0) + rng.normal(0.0, 0.3, rows)
    values[rows // 2] += 8.0
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.csv"
        with source.open("w") as out:
            out.write("timestamp,value\n")
            start_s = 1_767_225_600
            out.writelines(f"{start_s + 5 * i},{v:.3f}\n" for i, v in enumerate(values))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "rackwatch", "detect", str(source), str(Path(tmp) / "out.csv")],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if done.returncode != 0:
            raise SystemExit(f"rackwatch detect failed: {done.stderr}")
        start = time.thread_time()
        summary = detect_csv(source, Path(tmp) / "again.csv")
        cpu = time.thread_time() - start
        size = source.stat().st_size
    print(
        f"rackwatch detect, {rows:,} rows ({size / 2**20:.1f} MiB): the command {wall:.2f} s "
        f"wall, {child_cpu:.2f} s CPU (start-up included); in process {cpu:.2f} s CPU = "
        f"{rows / cpu / 1e3:.0f} k rows/s, {summary.anomalies} anomaly found"
    )


def quality(seeds: range) -> None:
    """Detection on the twin: latency of a stopped fan and of a drifting CPU probe, and the
    anomalies raised on a fault-free room (per server-day), per detector."""
    fan_univariate, fan_residual = [], []
    for seed in seeds:
        registry = SeriesRegistry()
        source = TwinSource(Twin.from_scenario("fan-fail", seed=seed), registry)
        history, _ = source.read(300)
        detector, scorer = (
            AnomalyDetector(),
            ResidualScorer(ResidualModel.fit(history, registry), registry),
        )
        detector.score(history)
        scorer.score(history)
        live, events = source.read(240)
        fault_ts = events[0].ts
        cpu = registry.get("c01/r01/s03", "cpu_temperature_celsius")
        for found, scores in (
            (fan_univariate, detector.score(live)),
            (fan_residual, scorer.score(live)),
        ):
            late = [
                (c.ts - fault_ts) // 1000 for c in scores.changes if c.is_start and c.series == cpu
            ]
            found.append(min((t for t in late if t >= 0), default=None))
    print(
        f"fan-fail (seeds {seeds.start}-{seeds.stop - 1}), s03's CPU temperature, "
        "seconds from the fan's stop to the anomaly:"
    )
    print(f"  deviation/level detectors {fan_univariate}; residual {fan_residual}")

    drift_delays = []
    for seed in seeds:
        registry = SeriesRegistry()
        drift = ScheduledFault(
            "sensor_drift",
            "c01/r01/s04",
            3 * 3600.0,
            {"metric": "cpu_temperature_celsius", "slope_per_hour": 0.2},
        )
        twin = Twin("medium", seed=seed, faults=[drift])
        source = TwinSource(twin, registry)
        history, _ = source.read(3 * 720)
        scorer = ResidualScorer(ResidualModel.fit(history, registry), registry)
        scorer.score(history)
        scores = scorer.score(source.read(3 * 720)[0])
        probe = registry.get("c01/r01/s04", "cpu_temperature_celsius")
        starts = [c.ts for c in scores.changes if c.is_start and c.series == probe]
        drift_delays.append(
            round((starts[0] - twin.start_ms - 3 * 3_600_000) / 3_600_000, 2) if starts else None
        )
    print(
        "sensor drift +0.2 °C/h on s04 from 3 h (residual fitted on 0-3 h), hours to detect: "
        f"{drift_delays}"
    )

    hours = 6
    per_kind: dict[str, int] = {}
    residual_starts = 0
    n_servers = 0
    for seed in seeds:
        registry = SeriesRegistry()
        source = TwinSource(Twin("medium", seed=seed), registry)
        n_servers = source.twin.topology.n_servers
        history, _ = source.read(3 * 720)
        detector = AnomalyDetector()
        scorer = ResidualScorer(ResidualModel.fit(history, registry), registry)
        detector.score(history)
        scorer.score(history)
        live, _ = source.read(hours * 720)
        for change in detector.score(live).changes:
            if change.is_start:
                label = f"{change.detector.label} on {registry.key(change.series).metric}"
                per_kind[label] = per_kind.get(label, 0) + 1
        residual_starts += sum(c.is_start for c in scorer.score(live).changes)
    server_days = len(seeds) * n_servers * hours / 24
    print(
        f"fault-free medium room, {len(seeds)} x {hours} h after 3 h of history, "
        "anomalies per server-day:"
    )
    print(f"  residual {residual_starts / server_days:.2f}")
    for label, count in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {label}: {count / server_days:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, nargs="*", default=[20, 2000])
    parser.add_argument("--no-csv", action="store_true")
    parser.add_argument(
        "--quality", action="store_true", help="also detection latency and false alarms (twin)"
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    for servers in args.servers:
        room(max(1, servers // 20))
    if not args.no_csv:
        csv_case(CSV_ROWS)
    if args.quality:
        quality(range(1, 6))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"process max RSS {maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
