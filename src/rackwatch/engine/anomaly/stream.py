"""Per-series streaming anomaly scores: one `AnomalyDetector` scores every series of a room.

Each sample is scored against what its series did *before* it, then learned: nothing looks
ahead. Four detectors run on every series, each giving a score in [0, 1]:

- **deviation**: a robust baseline, an exponentially weighted mean and mean absolute deviation
  (turned into a standard deviation), gives `z = (x - mean) / sigma`; the score climbs from 0
  at |z| = 0 through 0.5 at |z| = 5 to 0.88 at |z| = 6. A sample pulls the baseline by at
  most `winsor` sigmas, so one spike barely moves it;
- **level shift**: a two-sided CUSUM of z (each sample counts at most `cusum_cap`, less the
  allowance `cusum_k`) catches a persistent shift too small for the deviation score;
- **stuck**: a value that stops changing while the series normally changes. The surprise of
  a run of n unchanged samples is `n * -log(1 - p)`, p the series' usual chance of a change;
- **null run**: a sensor answering NULL (NaN) several times in a row.

Time is the samples' own: every duration is counted in *samples*, the series' typical
interval (a geometric mean of the recent intervals), so the same defaults serve a 1-second
and a 1-hour series, and timestamps may be in any integer unit. A gap counts as the samples
it replaced (at most `max_gap`), so the baseline forgets more across a gap. A series is
scored only after `warmup` finite samples (before: score 0). Values may have any scale: the
scores depend on z, never on the unit.

Cost: the state is about 230 bytes per series (`StateTable` arrays, grown with the ids). A
batch is laid out as a grid (series x their samples in the batch) and every recursion is a
closed-form array operation over blocks of up to `reference_every` samples
(`rackwatch.engine.anomaly.scan`), so one sample per series costs a few array passes over
the batch whatever the number of series, and a long single series costs one pass per block.
Batch boundaries do not change the scores (beyond float rounding).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(20.0, 0.5, 300)
>>> x[250] += 10.0                                    # a spike of 20 sigma
>>> scores = AnomalyDetector().score_arrays(np.arange(300) * 5000, np.zeros(300), x)
>>> int(np.argmax(scores.score)), bool(scores.is_anomaly[250]), scores.changes[0].detector.label
(250, True, 'deviation')
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.anomaly.scan import (
    F64,
    I64,
    Bools,
    alpha,
    at,
    ew_average,
    ew_scan,
    group_rows,
    last_index,
    prev_index,
    shift_right,
    squash,
)
from rackwatch.engine.anomaly.scores import (
    I8,
    AnomalyChange,
    Decisions,
    DecisionState,
    Detector,
    Scores,
    ZScoring,
    collect_changes,
    decide,
)
from rackwatch.engine.anomaly.state import StateTable
from rackwatch.model.records import Batch

MAD_TO_SIGMA = float(np.sqrt(np.pi / 2.0))
"""A normal distribution's standard deviation over its mean absolute deviation."""
STUCK_P_MAX = 0.999
"""Cap on the change probability in the stuck surprise: at most 6.9 nats per sample."""
RELATIVE_FLOOR = 1e-9
"""Smallest sigma relative to the series' level: below it z would count rounding noise."""
RHO_MAX = 0.95
"""Cap on the autocorrelation that deflates the CUSUM (to 16 % of each step at most)."""
MAX_CELLS = 1 << 16
"""Most grid cells (series x samples) scored at once: bounds the temporary arrays (~100 of
them, 0.5 MiB each) whatever the batch."""


@dataclass(frozen=True, slots=True)
class DetectorConfig(ZScoring):
    """Parameters of the per-series detectors (and, from `ZScoring`, of the deviation and
    level-shift scores and the decision). Counts and half-lives are in samples."""

    warmup: int = 40
    """Finite samples a series needs before it is scored (score 0 until then)."""
    level_halflife: float = 120.0
    """Half-life of the baseline mean (10 min at 5 s)."""
    scale_halflife: float = 480.0
    """Half-life of the baseline's spread."""
    interval_halflife: float = 32.0
    """Half-life of the typical sampling interval."""
    max_gap: float = 32.0
    """Most samples one gap counts for in the baseline's decay."""
    min_step: float = 0.1
    """Least a sample counts for (two samples at the same instant)."""
    winsor: float = 3.0
    """A sample pulls the baseline as if it were at most this many sigmas away."""
    reference_every: int = 128
    """The clipping reference (mean and sigma) is refreshed every this many samples."""
    change_halflife: float = 256.0
    """Half-life of the change probability and of the typical change (stuck detection)."""
    stuck_min: int = 5
    """Unchanged samples before the stuck score may rise."""
    stuck_half: float = 12.0
    """Surprise of an unchanged run (nats) scoring 0.5."""
    stuck_width: float = 1.5
    stuck_ratio: float = 2.0
    """A run must also be this many times the longest recent unchanged run."""
    stuck_memory: float = 8640.0
    """Half-life of that longest run (12 h at 5 s)."""
    null_half: float = 2.0
    """Consecutive NULL readings scoring 0.5 (three score 0.95)."""
    null_width: float = 0.35

    def __post_init__(self) -> None:
        ZScoring.__post_init__(self)  # (zero-argument super() fails in slotted dataclasses)
        halflives = (
            self.level_halflife,
            self.scale_halflife,
            self.interval_halflife,
            self.change_halflife,
        )
        if min(halflives) < 1.0:
            raise ValueError(f"half-lives must be >= 1 sample, got {halflives}")
        if not 0.0 < self.min_step <= 1.0 <= self.max_gap <= min(halflives):
            raise ValueError(
                "want 0 < min_step <= 1 <= max_gap <= every half-life, got "
                f"min_step={self.min_step}, max_gap={self.max_gap}"
            )
        if self.warmup < 2 or self.reference_every < 1 or self.stuck_min < 1:
            raise ValueError("warmup must be >= 2, reference_every and stuck_min >= 1")


_FIELDS: dict[str, tuple[type[np.generic], Any]] = {
    "pos": (np.int64, 0),  # samples seen (NULL included)
    "n_fin": (np.int64, 0),  # finite samples seen
    "last_ts": (np.int64, 0),
    "last_fin_ts": (np.int64, 0),
    "last_x": (np.float64, np.nan),
    "tau_num": (np.float64, 0.0),  # log typical interval, average started at 0 ...
    "tau_w": (np.float64, 0.0),  # ... and its weight
    "m": (np.float64, np.nan),
    "s_num": (np.float64, 0.0),
    "s_w": (np.float64, 0.0),
    "q_num": (np.float64, 0.0),  # typical size of a change
    "q_w": (np.float64, 0.0),
    "p_num": (np.float64, 0.0),  # chance that a sample changes the value
    "p_w": (np.float64, 0.0),
    "run": (np.int64, 0),  # finite samples since the value last changed
    "run_p": (np.float64, 0.0),  # change chance when it last changed
    "run_max": (np.float64, 0.0),  # longest recent run (fading)
    "stuck": (np.float64, 0.0),  # stuck score of the last finite sample
    "nulls": (np.int64, 0),  # NULL readings in a row
    "z_prev": (np.float64, np.nan),  # capped z of the last scored sample
    "r_num": (np.float64, 0.0),  # average z[t] * z[t-1] ...
    "r_den": (np.float64, 0.0),  # ... over average z[t]²: lag-1 autocorrelation
    "cus_hi": (np.float64, 0.0),
    "cus_lo": (np.float64, 0.0),
    "m_ref": (np.float64, np.nan),
    "sig_ref": (np.float64, np.inf),
    "active": (np.bool_, False),
    "since": (np.int64, 0),
    "peak": (np.float64, 0.0),
    "kind": (np.int8, 0),
}
_COMPONENTS = (Detector.DEVIATION, Detector.LEVEL_SHIFT, Detector.STUCK, Detector.NULL_RUN)


class AnomalyDetector:
    """Streaming scores for any number of series (ids from a `SeriesRegistry`).

    `score(batch)` scores and learns each row in time order per series and returns `Scores`
    in the batch's row order, with the anomalies that started or ended. Rows older than their
    series' previous sample are taken as they come (their interval counts as zero). Not
    thread-safe: one consumer calls it.
    """

    def __init__(self, config: DetectorConfig | None = None, *, capacity: int = 0) -> None:
        self.config = config or DetectorConfig()
        self.state = StateTable(_FIELDS, capacity)

    @property
    def n_series(self) -> int:
        return len(self.state)

    def score(self, batch: Batch) -> Scores:
        return self.score_arrays(batch.ts, batch.series, batch.value)

    def score_arrays(self, ts: Any, series: Any, value: Any) -> Scores:
        """Score rows given as array-likes: integer timestamps (any unit), ids >= 0, floats."""
        ts_a = np.ascontiguousarray(ts, dtype=np.int64)
        series_a = np.ascontiguousarray(series, dtype=np.int32)
        value_a = np.ascontiguousarray(value, dtype=np.float64)
        n = len(ts_a)
        if not len(series_a) == len(value_a) == n:
            raise ValueError("ts, series and value differ in length")
        if n and int(series_a.min()) < 0:
            raise ValueError("series ids must be >= 0")
        out = {name: np.zeros(n) for name in ("score", "z", *(d.label for d in _COMPONENTS))}
        out_kind = np.zeros(n, dtype=np.int8)
        out_active = np.zeros(n, dtype=np.bool_)
        changes: list[AnomalyChange] = []
        order, row_ids, row, col = group_rows(series_a, ts_a)
        if n:
            self.state.ensure(int(row_ids.max()) + 1)
        every = self.config.reference_every
        first_len = every - self.state["pos"][row_ids] % every
        head = col < first_len[row]
        segment = np.where(head, 0, 1 + (col - first_len[row]) // every)
        offset = np.where(head, col, (col - first_len[row]) % every)
        by_segment = np.argsort(segment, kind="stable")
        bounds = np.searchsorted(segment[by_segment], np.arange(int(segment.max(initial=-1)) + 2))
        for lo, hi in itertools.pairwise(bounds.tolist()):
            for cells, local in _row_groups(by_segment[lo:hi], row, offset):
                ids = row_ids[row[cells][np.r_[True, local[1:] != local[:-1]]]]
                shape = (len(ids), int(offset[cells].max()) + 1)
                present = np.zeros(shape, dtype=np.bool_)
                x = np.full(shape, np.nan)
                t = np.zeros(shape, dtype=np.int64)
                where = (local, offset[cells])
                src = order[cells]
                present[where] = True
                x[where] = value_a[src]
                t[where] = ts_a[src]
                st = self.state.gather(ids)
                result = _score_block(self.config, st, present, x, t)
                self.state.scatter(ids, st)
                for name, grid in result.grids.items():
                    out[name][src] = grid[where]
                out_kind[src] = result.kind[where]
                out_active[src] = result.decisions.active[where]
                changes.extend(collect_changes(result.decisions, result.grids["score"], t, ids))
        changes.sort(key=lambda c: (c.ts, c.series))
        return Scores(
            ts=ts_a,
            series=series_a,
            value=value_a,
            score=out["score"],
            detector=out_kind,
            z=out["z"],
            is_anomaly=out_active,
            components={d: out[d.label] for d in _COMPONENTS},
            changes=tuple(changes),
        )


def _row_groups(cells: I64, row: I64, offset: I64) -> Iterator[tuple[I64, npt.NDArray[np.int64]]]:
    """Split one segment's cells (sorted by row) into groups of whole rows of at most
    MAX_CELLS grid cells: yields the cells and their row within the group."""
    rows_here = row[cells]
    local = np.cumsum(np.r_[True, rows_here[1:] != rows_here[:-1]]) - 1
    width = int(offset[cells].max(initial=0)) + 1
    per_group = max(1, MAX_CELLS // width)
    n_rows = int(local[-1]) + 1 if len(local) else 0
    bounds = np.searchsorted(local, np.arange(0, n_rows + per_group, per_group))
    for lo, hi in itertools.pairwise(bounds.tolist()):
        if hi > lo:
            yield cells[lo:hi], local[lo:hi] - local[lo]


@dataclass(frozen=True, slots=True)
class _Block:
    grids: dict[str, F64]
    kind: I8
    decisions: Decisions


# 0/0 is "not known yet" (NaN); x / tiny before the warm-up overflows and is masked.
@np.errstate(divide="ignore", invalid="ignore", over="ignore")
def _score_block(
    cfg: DetectorConfig,
    st: dict[str, npt.NDArray[Any]],
    present: Bools,
    x: F64,
    t: I64,
) -> _Block:
    """Score and learn a grid of samples (rows: series, left-aligned), updating `st` in place.

    Every row holds at most `reference_every` samples and ends at or before its next
    reference refresh, so the clipping reference is constant along a row."""
    fin = present & np.isfinite(x)
    fin_count = np.cumsum(fin, axis=1)
    present_count = np.cumsum(present, axis=1)
    warm = fin & (st["n_fin"][:, None] + fin_count - fin >= cfg.warmup)

    # Sampling interval: a geometric mean of the intervals between present samples.
    prev_present = prev_index(present)
    dt_present = t - at(t, prev_present, st["last_ts"])
    has_interval = present & ((prev_present >= 0) | (st["pos"] > 0)[:, None]) & (dt_present > 0)
    a_tau = np.where(has_interval, alpha(cfg.interval_halflife), 0.0)
    log_dt = np.log(np.maximum(dt_present, 1).astype(np.float64))
    tau_num, tau_w = ew_average(st["tau_num"], st["tau_w"], a_tau, log_dt)
    log_tau_before = shift_right(tau_num / tau_w, st["tau_num"] / st["tau_w"])

    # How many samples' worth of decay each finite sample brings (a gap brings several).
    prev_fin = prev_index(fin)
    has_prev = (prev_fin >= 0) | (st["n_fin"] > 0)[:, None]
    dt_fin = (t - at(t, prev_fin, st["last_fin_ts"])).astype(np.float64)
    steps = dt_fin / np.exp(log_tau_before)
    steps = np.where(has_prev & np.isfinite(steps), steps, 1.0)
    steps = np.clip(steps, cfg.min_step, cfg.max_gap)

    # Baseline mean, fed samples clipped to the reference's mean ± winsor sigmas.
    m0 = st["m"].copy()
    fresh = np.isnan(m0) & fin.any(axis=1)
    m0[fresh] = x[fresh, np.argmax(fin[fresh], axis=1)]
    has_ref = np.isfinite(st["sig_ref"]) & np.isfinite(st["m_ref"])
    width = np.where(has_ref, cfg.winsor * st["sig_ref"], np.inf)
    centre = np.where(has_ref, st["m_ref"], 0.0)
    clipped = np.clip(x, (centre - width)[:, None], (centre + width)[:, None])
    a_m = np.where(fin, alpha(cfg.level_halflife, steps), 0.0)
    m = ew_scan(m0, a_m, clipped)
    m_before = shift_right(m, m0)

    # Spread: average |clipped sample - mean| (started at 0, divided by its weight).
    a_s = np.where(fin & has_prev, alpha(cfg.scale_halflife, steps), 0.0)
    s_num, s_w = ew_average(st["s_num"], st["s_w"], a_s, np.abs(clipped - m_before))
    sigma = MAD_TO_SIGMA * s_num / s_w
    sigma_before = shift_right(sigma, MAD_TO_SIGMA * st["s_num"] / st["s_w"])

    # How often and by how much the value changes (stuck detection, and sigma's floor for
    # quantised readings: a one-step flip of a 0.1 °C sensor is not an anomaly).
    diff = x - at(x, prev_fin, st["last_x"])
    has_diff = fin & has_prev
    changed = has_diff & (diff != 0.0)
    a_change = alpha(cfg.change_halflife)
    a_p = np.where(has_diff, a_change, 0.0)
    p_num, p_w = ew_average(st["p_num"], st["p_w"], a_p, changed.astype(np.float64))
    p_change_before = shift_right(p_num / p_w, st["p_num"] / st["p_w"])
    a_q = np.where(changed, a_change, 0.0)
    q_num, q_w = ew_average(st["q_num"], st["q_w"], a_q, np.abs(diff))
    q = q_num / q_w
    sigma_eff = np.fmax(sigma_before, _floor(shift_right(q, st["q_num"] / st["q_w"]), m_before))

    z = np.where(warm, (x - m_before) / sigma_eff, np.nan)
    deviation = np.where(warm, cfg.deviation(z), 0.0)

    # CUSUM of z, each step deflated by the series' lag-1 autocorrelation rho: a slow wander
    # of a smooth signal (thermal lag) is not a shift. sqrt((1 - rho) / (1 + rho)) is how much
    # the standard deviation of a long sum shrinks against independent samples.
    capped = np.clip(np.where(warm, z, 0.0), -cfg.cusum_cap, cfg.cusum_cap)
    prev_warm = prev_index(warm)
    has_pair = warm & ((prev_warm >= 0) | np.isfinite(st["z_prev"])[:, None])
    z_prev = at(capped, prev_warm, np.nan_to_num(st["z_prev"]))
    a_r = np.where(has_pair, alpha(cfg.scale_halflife), 0.0)
    r_num = ew_scan(st["r_num"], a_r, capped * z_prev)
    r_den = ew_scan(st["r_den"], a_r, capped * capped)
    rho = shift_right(r_num / r_den, st["r_num"] / st["r_den"])
    rho = np.clip(np.where(np.isfinite(rho), rho, 0.0), 0.0, RHO_MAX)
    deflated = capped * np.sqrt((1.0 - rho) / (1.0 + rho))
    cus_hi, cus_lo = cfg.cusum(st["cus_hi"], st["cus_lo"], deflated, warm)
    level = np.where(warm, cfg.shift(cus_hi, cus_lo), 0.0)

    # Stuck: finite samples since the last change, against the change chance at that change.
    no_count = np.zeros(len(x), dtype=np.int64)
    last_reset = last_index(changed | (fin & ~has_prev))
    run = np.where(
        last_reset >= 0,
        fin_count - at(fin_count, last_reset, no_count),
        st["run"][:, None] + fin_count,
    )
    known_p = np.where(np.isnan(p_change_before), 0.0, p_change_before)
    run_p = at(known_p, last_reset, st["run_p"])
    surprise = run * -np.log1p(-np.clip(run_p, 0.0, STUCK_P_MAX))
    stuck_raw = squash(surprise, cfg.stuck_half, cfg.stuck_width)
    # The longest unchanged run the series had lately (forgotten with half-life stuck_memory
    # samples; runs that scored as stuck are not learned): some series stick in clusters.
    run_before = shift_right(run, st["run"])
    stuck_before = shift_right(stuck_raw, st["stuck"])
    learned = changed & (stuck_before < cfg.on) & (run_before > 0)
    fade = np.log(2.0) / cfg.stuck_memory
    lifted = np.where(learned, np.log(np.maximum(run_before, 1)) + fin_count * fade, -np.inf)
    log_max = np.maximum(
        np.log(np.maximum(st["run_max"], 1e-300))[:, None],
        np.maximum.accumulate(lifted, axis=1),
    )
    run_max = np.exp(log_max - fin_count * fade)
    run_max_before = shift_right(run_max, st["run_max"])
    stuck = np.where(
        warm & (run >= cfg.stuck_min) & (run > cfg.stuck_ratio * run_max_before), stuck_raw, 0.0
    )

    # NULL run: present samples since the last finite one.
    last_fin = last_index(fin)
    nulls = np.where(
        last_fin >= 0,
        present_count - at(present_count, last_fin, no_count),
        st["nulls"][:, None] + present_count,
    )
    null = np.where(present & ~fin, squash(nulls, cfg.null_half, cfg.null_width), 0.0)

    parts = np.stack([deviation, level, stuck, null])
    kind = np.argmax(parts, axis=0).astype(np.int8)
    score = np.max(parts, axis=0)
    before = DecisionState(st["active"], st["since"], st["peak"], st["kind"])
    decisions, after = decide(before, present, score, kind, t, cfg.thresholds)

    # The state after the block: each running quantity's last column.
    pos = st["pos"] + present_count[:, -1]
    n_fin = st["n_fin"] + fin_count[:, -1]
    refresh = pos // cfg.reference_every > st["pos"] // cfg.reference_every
    sigma_now = np.fmax(sigma[:, -1], _floor(q[:, -1], m[:, -1]))
    st["m_ref"] = np.where(refresh, m[:, -1], st["m_ref"])
    st["sig_ref"] = np.where(
        refresh, np.where(n_fin >= cfg.warmup, sigma_now, np.inf), st["sig_ref"]
    )
    st["last_ts"] = at(t, last_index(present), st["last_ts"])[:, -1]
    st["last_fin_ts"] = at(t, last_fin, st["last_fin_ts"])[:, -1]
    st["last_x"] = at(x, last_fin, st["last_x"])[:, -1]
    st["z_prev"] = at(capped, last_index(warm), st["z_prev"])[:, -1]
    running = {
        "tau_num": tau_num,
        "tau_w": tau_w,
        "m": m,
        "s_num": s_num,
        "s_w": s_w,
        "q_num": q_num,
        "q_w": q_w,
        "p_num": p_num,
        "p_w": p_w,
        "run": run,
        "run_p": run_p,
        "run_max": np.where(run_max > 1e-300, run_max, 0.0),
        "stuck": stuck_raw,
        "nulls": nulls,
        "r_num": r_num,
        "r_den": r_den,
        "cus_hi": cus_hi,
        "cus_lo": cus_lo,
    }
    for name, grid in running.items():
        st[name] = grid[:, -1]
    st["pos"], st["n_fin"] = pos, n_fin
    st["active"], st["since"], st["peak"], st["kind"] = (
        after.active,
        after.since,
        after.peak,
        after.detector,
    )
    grids = {"score": score, "z": z}
    grids.update(zip((d.label for d in _COMPONENTS), (deviation, level, stuck, null), strict=True))
    return _Block(grids, kind, decisions)


def _floor(q: F64, m: F64) -> F64:
    """Least sigma: half the typical change (quantised readings), and a relative epsilon."""
    return np.asarray(
        np.fmax(np.fmax(0.5 * q, RELATIVE_FLOOR * np.abs(m)), np.finfo(np.float64).tiny)
    )
