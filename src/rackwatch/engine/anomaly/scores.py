"""What the detectors return: per-sample scores, and anomaly starts and ends with hysteresis.

A score is in [0, 1]: 0 is ordinary, 0.5 borderline, >= 0.9 clearly anomalous (the default
start threshold). Each sample's score is the largest of its detectors' scores; `detector`
says which one. An anomaly *starts* at the first sample scoring >= `on` and *ends* at the
first later sample scoring < `off`: a score hovering near one threshold does not flap.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rackwatch.engine.anomaly.scan import (
    F64,
    I64,
    Bools,
    at,
    last_index,
    lindley,
    shift_right,
    squash,
)

I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]


class Detector(enum.IntEnum):
    """The detectors; a sample's `detector` code is the one with the highest score."""

    DEVIATION = 0
    """The value is far from the series' recent baseline (spike, jump, fast rise)."""
    LEVEL_SHIFT = 1
    """The series sits persistently above or below its baseline (step, drift): CUSUM."""
    STUCK = 2
    """The value stopped changing while it normally changes (frozen sensor)."""
    NULL_RUN = 3
    """The sensor answers NULL (NaN) several times in a row (dead sensor)."""
    RESIDUAL = 4
    """The value departs from what the device's other signals explain (physics model)."""
    DRIFT = 5
    """The physics residual's slow average, over conditions the model has seen on the device,
    left zero: the same load, inlet and airflow read differently than they used to."""

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AnomalyChange:
    """An anomaly starting (`is_start`) or ending on one series.

    `ts` is the sample that started or ended it, `start_ts` when it started (= `ts` for a
    start), `score` the sample's score, `peak_score` the highest score while it lasted (so far,
    for a start) and `detector` the detector that started it.
    """

    ts: int
    series: int
    is_start: bool
    score: float
    detector: Detector
    start_ts: int
    peak_score: float


@dataclass(frozen=True, slots=True)
class Scores:
    """The scores of a batch, row for row in the input's order.

    `score` is NaN for rows a detector did not score (the residual model's inputs missing);
    `z` is the signed standardized deviation behind the DEVIATION or RESIDUAL score (NaN
    during warm-up or on a NULL reading); `is_anomaly` is the decision after the row;
    `components` holds each detector's own score. `changes` are in time order.
    """

    ts: I64
    series: I32
    value: F64
    score: F64
    detector: I8
    z: F64
    is_anomaly: Bools
    components: Mapping[Detector, F64] = field(default_factory=dict)
    changes: tuple[AnomalyChange, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Hysteresis of the anomaly decision: start at score >= `on`, end at score < `off`."""

    on: float = 0.9
    off: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.off <= self.on <= 1.0:
            raise ValueError(f"want 0 < off <= on <= 1, got on={self.on}, off={self.off}")


@dataclass(frozen=True, slots=True)
class ZScoring:
    """How a standardized deviation z becomes scores, and scores a decision.

    deviation score: |z| through a logistic curve, 0.5 at `deviation_half`;
    level-shift score: a two-sided CUSUM of z (each step capped at `cusum_cap`, less the
    allowance `cusum_k`), 0.5 at a sum of `cusum_half`; decision: `on`/`off` hysteresis.
    """

    deviation_half: float = 5.0
    """|z| scoring 0.5 (0.88 at 6, 0.98 at 7)."""
    deviation_width: float = 0.5
    cusum_k: float = 1.0
    """CUSUM allowance: shifts below this many sigmas are not accumulated."""
    cusum_cap: float = 4.0
    """Most |z| one sample adds to the CUSUM (spikes are the deviation score's job)."""
    cusum_half: float = 20.0
    """CUSUM sum scoring 0.5."""
    cusum_width: float = 3.0
    on: float = 0.9
    """An anomaly starts at a score >= on ..."""
    off: float = 0.5
    """... and ends at the first score below off."""

    def __post_init__(self) -> None:
        Thresholds(self.on, self.off)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.on, self.off)

    def deviation(self, z: F64) -> F64:
        return squash(np.abs(z), self.deviation_half, self.deviation_width)

    def cusum(self, hi: F64, lo: F64, step: F64, counted: Bools) -> tuple[F64, F64]:
        """Both CUSUMs after each column from `hi`, `lo`, adding `step` (z, capped, maybe
        deflated) where `counted`."""
        up = np.where(counted, step - self.cusum_k, 0.0)
        down = np.where(counted, -step - self.cusum_k, 0.0)
        return lindley(hi, up), lindley(lo, down)

    def shift(self, hi: F64, lo: F64) -> F64:
        return squash(np.maximum(hi, lo), self.cusum_half, self.cusum_width)


@dataclass(slots=True)
class DecisionState:
    """Per-row decision state carried between blocks (gathered from and scattered back to the
    per-series arrays by the caller)."""

    active: Bools
    since: I64
    peak: F64
    detector: I8


@dataclass(frozen=True, slots=True)
class Decisions:
    active: Bools
    starts: Bools
    ends: Bools
    since: I64
    peak: F64
    detector: I8


def decide(
    state: DecisionState,
    present: Bools,
    score: F64,
    detector: I8,
    ts: I64,
    thresholds: Thresholds,
) -> tuple[Decisions, DecisionState]:
    """Run the hysteresis over a grid of scores (rows: series; columns: their samples).

    A row's decision changes only at present samples with a score >= on (anomalous) or < off
    (normal); in between, and on absent columns, it keeps the last one. Returns the decision
    per cell with the start/end marks and the state after the grid.

    >>> s = DecisionState(np.array([False]), np.array([0]), np.array([0.0]), np.array([0], np.int8))
    >>> score = np.array([[0.2, 0.95, 0.7, 0.99, 0.3]])
    >>> d, after = decide(s, score >= 0, score, np.zeros((1, 5), np.int8),
    ...                   np.arange(5)[None], Thresholds())
    >>> d.active.astype(int).tolist(), d.ends.nonzero()[1].tolist(), float(d.peak[0, 4])
    ([[0, 1, 1, 1, 0]], [4], 0.99)
    """
    clean = np.where(present, score, np.nan)
    anomalous = clean >= thresholds.on
    decisive = anomalous | (clean < thresholds.off)
    last = last_index(decisive)
    found = np.take_along_axis(anomalous, np.maximum(last, 0), axis=1)
    active = np.where(last >= 0, found, state.active[:, None])
    before = shift_right(active, state.active)
    starts = active & ~before
    ends = before & ~active
    start_at = last_index(starts)
    since = at(ts, start_at, state.since)
    kind = at(detector, start_at, state.detector)
    # Peak of each anomaly, only where it is reported: at starts (the start's score), at ends
    # and for the state after the grid (the span's maximum, with the peak carried in).
    rows, cols = active.shape
    peak = np.where(starts, score, np.nan)
    end_r, end_c = np.nonzero(ends)
    open_r = np.flatnonzero(active[:, -1])
    query_r = np.concatenate([end_r, open_r])
    query_c = np.concatenate([end_c, np.full(len(open_r), cols - 1)])
    span_peak = np.zeros(0)
    if len(query_r):
        first_c = start_at[query_r, query_c]
        flat = np.append(np.where(active & present, clean, -np.inf).ravel(), -np.inf)
        bounds = np.empty(2 * len(query_r), dtype=np.int64)
        bounds[0::2] = query_r * cols + np.maximum(first_c, 0)
        bounds[1::2] = query_r * cols + query_c + 1
        inside = np.maximum.reduceat(flat, bounds)[0::2]
        carried = np.where((first_c < 0) & state.active[query_r], state.peak[query_r], -np.inf)
        span_peak = np.maximum(inside, carried)
        peak[end_r, end_c] = span_peak[: len(end_r)]
    final_peak = np.zeros(rows)
    final_peak[open_r] = span_peak[len(end_r) :]
    after = DecisionState(active[:, -1].copy(), since[:, -1].copy(), final_peak, kind[:, -1].copy())
    return Decisions(active, starts, ends, since, peak, kind), after


def collect_changes(
    decisions: Decisions,
    score: F64,
    ts: I64,
    series: I32,
) -> list[AnomalyChange]:
    """The starts and ends of a grid as records (only these become Python objects)."""
    rows, cols = np.nonzero(decisions.starts | decisions.ends)
    return [
        AnomalyChange(
            ts=int(ts[r, c]),
            series=int(series[r]),
            is_start=bool(decisions.starts[r, c]),
            score=float(score[r, c]),
            detector=Detector(int(decisions.detector[r, c])),
            start_ts=int(decisions.since[r, c]),
            peak_score=float(decisions.peak[r, c]),
        )
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
