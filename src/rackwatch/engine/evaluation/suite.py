"""The whole evaluation: the grid's runs in a process pool, scored, as one `Evaluation`.

Runs are independent, so they go to `jobs` worker processes (spawned: no state shared with
the caller), the longest first so that no long run is left alone at the end. The figures do
not depend on the order the runs finish in: results are put back in the grid's order. A run
that raises is kept as a `RunFailure` (reported with its error) and the others go on.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from rackwatch.engine.evaluation.grid import FIRST_SEED, RunSpec, build_grid, seeds_from
from rackwatch.engine.evaluation.match import GRACE_S
from rackwatch.engine.evaluation.metrics import (
    WARMUP_S,
    RunScore,
    kind_figures,
    overall_figures,
    score_run,
)
from rackwatch.engine.evaluation.runner import (
    CONTROL_STEPS,
    RunFailure,
    RunResult,
    execute_safely,
)
from rackwatch.twin import FAULTS

Outcome = RunResult | RunFailure
Progress = Callable[[Outcome, int, int], None]
"""Called as each run finishes with (its result or failure, runs done, runs in all)."""


def run_grid(
    specs: Sequence[RunSpec], jobs: int = 2, on_done: Progress | None = None
) -> list[Outcome]:
    """Every run of `specs` (in `jobs` processes when more than one), in `specs`' order."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    results: dict[int, Outcome] = {}
    order = sorted(range(len(specs)), key=lambda i: -specs[i].cost)

    def finished(i: int, result: Outcome) -> None:
        results[i] = result
        if on_done is not None:
            on_done(result, len(results), len(specs))

    if jobs == 1 or len(specs) <= 1:
        for i in order:
            finished(i, execute_safely(specs[i]))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(specs)), mp_context=context) as pool:
            futures = {pool.submit(execute_safely, specs[i]): i for i in order}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    return [results[i] for i in range(len(specs))]


@dataclass(frozen=True, slots=True)
class Evaluation:
    seeds: tuple[int, ...]
    jobs: int
    is_quick: bool
    results: tuple[RunResult, ...]
    scores: tuple[RunScore, ...]
    wall_s: float
    failures: tuple[RunFailure, ...] = ()

    @property
    def kinds(self) -> list[str]:
        """The fault kinds the runs held, in the catalogue's order."""
        present = {k for s in self.scores for k in s.kinds}
        return [k for k in FAULTS if k in present]

    @property
    def simulated_hours(self) -> float:
        return sum(r.duration_s for r in self.results) / 3600.0

    def overall(self) -> dict[str, Any]:
        return overall_figures(self.scores)

    def per_kind(self) -> dict[str, dict[str, Any]]:
        return {kind: kind_figures(kind, self.scores) for kind in self.kinds}

    def grid(self) -> dict[str, Any]:
        return {
            "seeds": list(self.seeds),
            "quick": self.is_quick,
            "jobs": self.jobs,
            "n_runs": len(self.results),
            "n_failed": len(self.failures),
            "simulated_hours": round(self.simulated_hours, 2),
            "wall_s": round(self.wall_s, 1),
            "cpu_s": round(sum(r.cpu_s for r in self.results), 1),
            "control_period_s": CONTROL_STEPS * 5.0,
            "warmup_s": WARMUP_S,
            "grace_s": GRACE_S,
            "runs": [_run_row(r, s) for r, s in zip(self.results, self.scores, strict=True)],
            "failed": [
                {"name": f.spec.name, "error": f.error, "trace": f.trace} for f in self.failures
            ],
        }

    def as_dict(self) -> dict[str, Any]:
        """`rackwatch evaluate --json`: `grid`, `overall` and one object per fault kind."""
        return {"grid": self.grid(), "overall": self.overall(), **self.per_kind()}


def _run_row(result: RunResult, score: RunScore) -> dict[str, Any]:
    spec = result.spec
    return {
        "name": spec.name,
        "group": spec.group,
        "preset": spec.preset,
        "seed": spec.seed,
        "hours": round(result.duration_s / 3600.0, 2),
        "faults": [
            {
                "kind": o.kind,
                "entity": o.entity,
                "detected": o.is_detected,
                "by": o.by,
                "latency_s": o.latency_s,
                "diagnosis": o.diagnosis,
                "diagnosis_right": o.is_diagnosis_right,
            }
            for o in score.outcomes
        ],
        "n_detections": score.n_detections,
        "n_false_alarms": score.n_false_alarms,
        "false_alarm_causes": score.false_alarm_causes,
        "n_anomalies": score.n_anomalies,
        "wall_s": round(result.wall_s, 2),
    }


def evaluate(
    n_seeds: int = 3,
    *,
    first_seed: int = FIRST_SEED,
    jobs: int = 2,
    quick: bool = False,
    only: Iterable[str] | None = None,
    on_start: Callable[[Sequence[RunSpec]], None] | None = None,
    on_done: Progress | None = None,
) -> Evaluation:
    """Build the grid for `n_seeds` seeds from `first_seed`, run it and score it; `on_start`
    gets the runs before they start."""
    began = time.perf_counter()
    seeds = seeds_from(n_seeds, first_seed)
    specs = build_grid(seeds, quick=quick, only=only)
    if on_start is not None:
        on_start(specs)
    outcomes = run_grid(specs, jobs, on_done)
    results = tuple(r for r in outcomes if isinstance(r, RunResult))
    failures = tuple(r for r in outcomes if isinstance(r, RunFailure))
    scores = tuple(score_run(r) for r in results)
    wall_s = time.perf_counter() - began
    return Evaluation(tuple(seeds), jobs, quick, results, scores, wall_s, failures)
