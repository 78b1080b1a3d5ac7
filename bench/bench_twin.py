"""Twin throughput: simulated seconds per wall second at 20, 200 and 2,000 servers, the time
to generate a week of the default room (very-large: 20 servers, ~270 series), and the same for
the GPU fleets (gpu-fleet: 16 servers, ~990 series; gpu-fleet-large: 64 servers, ~3,900 series,
with their jobs, cards and hosts).

    python bench/bench_twin.py            # prints one line per case

Timing runs without tracemalloc (it slows Python code); peak memory is then measured on one
block with tracemalloc (NumPy reports its buffers to it), and the process's max RSS is printed.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

from rackwatch.twin import Twin

CASES = [(1, 4096), (10, 720), (100, 120)]
"""(clusters of very-large, steps per run() call)."""
GPU_CASES = [("gpu-fleet", 720), ("gpu-fleet-large", 720), ("gpu-fleet-large", 1)]
"""(GPU scenario, steps per run() call): run(1) is how `rackwatch run` steps at speed 1."""
WEEK_STEPS = 7 * 86400 // 5
DAY_STEPS = 86400 // 5


def throughput(
    clusters: int, block: int, min_wall_s: float = 2.0, preset: str = "very-large"
) -> tuple[Twin, float, int]:
    """Steps per wall second over at least `min_wall_s`, after a warm-up block."""
    twin = Twin(preset, clusters=clusters, seed=0)
    twin.run(block)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_wall_s:
        twin.run(block)
        steps += block
    return twin, steps / elapsed, steps


def peak_block_bytes(twin: Twin, block: int) -> int:
    tracemalloc.start()
    twin.run(block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    print(f"python {sys.version.split()[0]}, step 5 s")
    for clusters, block in CASES:
        twin, steps_per_s, steps = throughput(clusters, block)
        n_series = len(twin.series_keys)
        peak = peak_block_bytes(twin, block)
        print(
            f"{twin.topology.n_servers:5d} servers {n_series:6d} series: "
            f"{steps_per_s:8.0f} steps/s = {steps_per_s * twin.step_s:9.0f} x real time, "
            f"{steps_per_s * n_series / 1e6:5.1f} M values/s "
            f"({steps} steps, run({block})), peak {peak / 2**20:6.1f} MiB per block"
        )
    twin = Twin("very-large", seed=0)
    start = time.perf_counter()
    values = sum(twin.run(DAY_STEPS).values.size for _ in range(WEEK_STEPS // DAY_STEPS))
    wall = time.perf_counter() - start
    print(
        f"very-large, 7 days ({WEEK_STEPS} steps, {values / 1e6:.1f} M values) in day blocks: "
        f"{wall:.2f} s wall"
    )
    for preset, block in GPU_CASES:
        twin, steps_per_s, steps = throughput(1, block, preset=preset)
        n_series = len(twin.series_keys)
        gpus = twin.topology.gpus
        n_cards = 0 if gpus is None else gpus.n_cards
        print(
            f"{preset:>15s} ({twin.topology.n_servers} servers, {n_cards} cards, "
            f"{n_series} series): {steps_per_s:8.0f} steps/s = "
            f"{steps_per_s * twin.step_s:9.0f} x real time, "
            f"{steps_per_s * n_series / 1e6:5.1f} M samples/s ({steps} steps, run({block}))"
        )
    twin = Twin("gpu-fleet-large", seed=0)
    n_values = n_jobs = 0
    start = time.perf_counter()
    for _ in range(2 * DAY_STEPS // 720):  # hour blocks: a day of 4,000 series is 560 MB
        frame = twin.run(720)
        n_values += frame.values.size
        n_jobs += sum(e.kind == "job.started" for e in frame.events)
    wall = time.perf_counter() - start
    print(
        f"gpu-fleet-large, 2 days ({2 * DAY_STEPS} steps, {n_values / 1e6:.1f} M samples, "
        f"{n_jobs} jobs) in hour blocks: {wall:.2f} s wall"
    )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"process max RSS {maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
