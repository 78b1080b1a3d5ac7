"""Time-to-failure on the wear runs, scored with `engine/predict/evaluate.py`'s definitions.

The stream publishes a `prediction.fan_failure` when a fan is first predicted and whenever the
predicted instant moves materially, and `prediction.cleared` when it is withdrawn; in between
the last prediction holds. `prediction_log` turns those events into the `PredictionLog` that
`score_wear_run` reads (a row per event; every fan's eta at that instant from its predicted
failure instant), so lead, error at a lead and interval coverage mean exactly what they mean
in docs/PREDICTION.md.

>>> from rackwatch.model.records import Event
>>> fan = "c01/r01/s01/fan1"
>>> log = prediction_log([
...     Event(1_000_000, "prediction.fan_failure", fan, attributes={
...         "failure_ms": 9_000_000, "failure_low_ms": 8_000_000, "failure_high_ms": 10_000_000}),
... ], fans=[fan])
>>> log.eta_s.tolist(), log.low_s.tolist()
([[8000.0]], [[7000.0]])
>>> run = score_wear_run(log, 0, fan, wear_start_ms=0, failure_ms=9_000_000)
>>> run.lead_s, run.errors_s[0], run.covered[0]
(8000.0, 0.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rackwatch.engine.predict.evaluate import PredictionLog, WearRun, score_wear_run
from rackwatch.model.records import Event, EventKind

__all__ = ["prediction_log", "score_wear", "score_wear_run"]


def _instant(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def prediction_log(events: Iterable[Event], fans: Sequence[str]) -> PredictionLog:
    """Every fan's held prediction at each prediction event (inf: none; NaN: no interval)."""
    events = list(events)
    names = list(dict.fromkeys([*fans, *(e.entity for e in events)]))
    column = {name: j for j, name in enumerate(names)}
    failure = np.full(len(names), math.inf)
    low = np.full(len(names), math.nan)
    high = np.full(len(names), math.nan)
    as_of: list[int] = []
    eta_rows, low_rows, high_rows = [], [], []
    for event in sorted(events, key=lambda e: e.ts):
        j = column[event.entity]
        if event.kind == EventKind.PREDICTION_FAN_FAILURE:
            a = event.attributes
            failure[j] = _instant(a.get("failure_ms"))
            low[j] = _instant(a.get("failure_low_ms"))
            high[j] = _instant(a.get("failure_high_ms"))
        elif event.kind == EventKind.PREDICTION_CLEARED:
            failure[j], low[j], high[j] = math.inf, math.nan, math.nan
        else:
            continue
        as_of.append(event.ts)
        eta_rows.append(np.maximum((failure - event.ts) / 1000.0, 0.0))
        low_rows.append((low - event.ts) / 1000.0)
        high_rows.append((high - event.ts) / 1000.0)
    n = len(names)
    return PredictionLog(
        tuple(names),
        np.asarray(as_of, dtype=np.int64),
        np.asarray(eta_rows, dtype=np.float64).reshape(-1, n),
        np.asarray(low_rows, dtype=np.float64).reshape(-1, n),
        np.asarray(high_rows, dtype=np.float64).reshape(-1, n),
    )


def score_wear(
    events: Iterable[Event], seed: int, fan: str, wear_start_ms: int, failure_ms: int
) -> WearRun:
    """Lead, error and coverage of `fan` that wore from `wear_start_ms` and stopped at
    `failure_ms`, from a run's prediction events."""
    return score_wear_run(prediction_log(events, [fan]), seed, fan, wear_start_ms, failure_ms)
