"""How well the physics residual model explains a CPU's temperature, with and without the
heatsink term (P·Q^-0.8): on fault-free twin rooms driven by the fan controller, the model is
fitted on the 3 h before (as `rackwatch evaluate` does), then every server's residual is
averaged over 15-minute windows for 6 h. A drift detector can only call offsets larger than
the model's own; the largest such mean is that floor.

    python bench/bench_residual_fit.py                     # medium room, seeds 0-2
    python bench/bench_residual_fit.py --preset large --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import numpy as np

from rackwatch.engine.anomaly import ResidualModel
from rackwatch.engine.anomaly.residual import ResidualSpec, _Features
from rackwatch.engine.evaluation.grid import fault_free_runs
from rackwatch.engine.evaluation.runner import drive
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.twin import Twin

HISTORY_H = 3.0
LIVE_H = 6.0
WINDOW_MS = 15 * 60_000


def window_means(spec_r: ResidualSpec, preset: str, seed: int) -> tuple[list[float], list[float]]:
    """(each server's residual sigma, each server's largest |15-min mean residual|)."""
    run = dataclasses.replace(fault_free_runs(seed, (preset,))[0], duration_s=LIVE_H * 3600)
    start = run.start_ms - round(HISTORY_H * 3_600_000)
    registry = SeriesRegistry()
    history: list[Batch] = []
    twin = Twin(preset, seed=seed, start_ms=start)
    drive(twin, registry, round(HISTORY_H * 720), history.append)
    model = ResidualModel.fit(Batch.concat(history), registry, spec_r)
    live_registry = SeriesRegistry()
    features = _Features(spec_r, live_registry)
    index = {e: i for i, e in enumerate(model.entities)}
    device, ts, residual = [], [], []

    def score(batch: Batch) -> None:
        rows = features.build(batch)
        fitted = np.array([index.get(rows.entities[d], -1) for d in rows.device], np.int64)
        ok = rows.valid & (fitted >= 0)
        device.append(fitted[ok])
        ts.append(rows.ts[ok])
        residual.append(rows.target[ok] - model.predict(fitted[ok], rows.features[ok]))

    live = Twin(preset, seed=seed, start_ms=run.start_ms)
    drive(live, live_registry, run.n_steps, score)
    d, t, r = (np.concatenate(x) for x in (device, ts, residual))
    window = (t - run.start_ms) // WINDOW_MS
    key = d * (int(window.max()) + 1) + window
    sums = np.bincount(key, weights=r)
    counts = np.bincount(key)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(
        len(model.entities), -1
    )
    return model.sigma.tolist(), np.nanmax(np.abs(means), axis=1).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    variants = {
        "inputs only": ResidualSpec(sink_power=""),
        "with heatsink term": ResidualSpec(),
    }
    print(
        f"{args.preset} room, seeds 0-{args.seeds - 1}: "
        f"{HISTORY_H:g} h of history, {LIVE_H:g} h scored"
    )
    print(f"{'model':20s} {'sigma median':>13s} {'largest |15-min mean|: median':>31s} {'max':>6s}")
    for name, spec_r in variants.items():
        sigmas: list[float] = []
        largest: list[float] = []
        for seed in range(args.seeds):
            s, m = window_means(spec_r, args.preset, seed)
            sigmas += s
            largest += m
        print(
            f"{name:20s} {statistics.median(sigmas):10.3f} °C "
            f"{statistics.median(largest):28.3f} °C {max(largest):6.2f} °C"
        )


if __name__ == "__main__":
    main()
