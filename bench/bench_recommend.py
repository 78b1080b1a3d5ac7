"""GPU recommendation cost: 2,000 machines x 8 cards (16,000 cards, about 90,000 series), each
step of a `GET /recommend` / `GET /recommend/placement` timed on its own.

    python bench/bench_recommend.py [--machines 2000] [--cards 8] [--repeat 5]

Steps: the layout (once per registry size), gathering the newest values and the inventory into
the fleet, the assessment (like index, like_server), one placement, and encoding the answers
(with and without the cards). Medians over `--repeat` runs, in ms; all of it runs in worker
threads in the server, never on its event loop.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rackwatch.api.recommend_out import placement_out, recommend_out
from rackwatch.engine.recommend import Job, assess, fleet_layout, gather
from rackwatch.engine.recommend.fleet import CARD_METRICS

GIB = float(1 << 30)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--cards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keys: list[tuple[str, str]] = []
    inventory: dict[str, dict[str, Any]] = {}
    for m in range(args.machines):
        name = f"c{m // 400 + 1:02d}/r{m // 20 % 20 + 1:02d}/s{m % 20 + 1:02d}"
        keys += [(name, "cpu_utilization_ratio"), (name, "memory_available_bytes")]
        inventory[name] = {"logical_cores": 64, "gpu_count": args.cards}
        for k in range(args.cards):
            keys += [(f"{name}/gpu{k}", metric) for metric in CARD_METRICS]
            inventory[f"{name}/gpu{k}"] = {"name": "NVIDIA H100", "memory_total_bytes": 80 * GIB}
    ids = np.arange(len(keys))
    ts = np.full(len(keys), 1_000, dtype=np.int64)
    value = np.where(
        np.array(["bytes" in metric for _, metric in keys]),
        rng.uniform(0, 80 * GIB, len(keys)),
        rng.uniform(0, 1, len(keys)),
    )
    figures: list[tuple[str, float]] = []
    ms, layout = timed(lambda: fleet_layout(keys, ids), args.repeat)
    figures.append(("layout (once per registry size)", ms))
    ms, fleet = timed(lambda: gather(layout, ts, value, inventory), args.repeat)
    figures.append(("gather values and inventory", ms))
    ms, a = timed(lambda: assess(fleet, [None] * len(fleet.machines)), args.repeat)
    figures.append(("assess: like index, like_server", ms))
    job = Job(gpus=2, gpu_memory_gb=40, cores=8)
    ms, placement = timed(lambda: a.place(job, 50), args.repeat)
    figures.append(("placement of 2 GPUs x 40 GB, 8 cores", ms))
    ms, _ = timed(lambda: recommend_out(a, 0, "live", False).model_dump_json(), args.repeat)
    figures.append(("encode GET /recommend?cards=false", ms))
    ms, body = timed(lambda: recommend_out(a, 0, "live", True).model_dump_json(), args.repeat)
    figures.append((f"encode GET /recommend ({len(body) / 1e6:.1f} MB)", ms))
    ms, _ = timed(lambda: placement_out(a, placement, 0, "live").model_dump_json(), args.repeat)
    figures.append(("encode GET /recommend/placement", ms))
    print(f"{args.machines} machines x {args.cards} cards, {len(keys):,} series")
    for name, ms in figures:
        print(f"  {name:<42} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
