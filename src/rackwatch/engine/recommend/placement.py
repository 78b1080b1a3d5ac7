"""Placement: which machines can take a job of `gpus` cards with `gpu_memory_gb` free on each,
`cores` CPU cores and `memory_gb` of memory, best first, and why the others cannot.

Sizes in GB are GiB (2^30 bytes), the unit GPU memory is sold in (an "80 GB" card has
81,920 MiB) and `free -g` shows.

**A card fits** when its machine is available (`availability.exclusion`), its free memory is
known and at least `gpu_memory_gb`, and it is not busy (utilisation below
`LikeThresholds.busy_card_ratio`, 0.8: a card computing flat out would run both jobs at half
speed; a card whose utilisation is unknown is not counted busy, and the answer says so).

**A machine can take the job** when at least `gpus` of its cards fit, its free cores
(logical cores x (1 - CPU utilisation)) are at least `cores`, and its available memory at
least `memory_gb`. A core count or memory size that is not known is not checked, and the
answer says so: the inventory of a twin or an old agent may not give them.

**Best first**: the job takes, on each machine, the fitting cards with the most free memory.
Candidates are ranked by the headroom of the tightest card taken (its free memory less
`gpu_memory_gb`, in whole GiB, more first: room for the job to grow, and for others to
share), then by the mean utilisation of the cards taken (lower first), then by CPU
utilisation (lower first), then by path. Machines that cannot take it come with the reason,
the closest first (most fitting cards), the excluded ones last.

Cost: one sort of the fitting cards, then NumPy per machine; explanations are written only for
the machines returned (`limit`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from rackwatch.engine.recommend.fleet import F64, Fleet
from rackwatch.engine.recommend.like import LikeThresholds, mean_by, pct, unknown_last

GIB: Final = float(1 << 30)
MAX_GPUS: Final = 64
MAX_GPU_MEMORY_GB: Final = 4096.0
MAX_CORES: Final = 8192
MAX_MEMORY_GB: Final = 1 << 20
"""Bounds of a job: above any single machine (a DGX has 8 cards of 141 GB, 224 cores, 2 TB)."""


class JobError(ValueError):
    """A job's value out of its bounds; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Job:
    """What a job needs. JobError (a ValueError) naming the field for a value out of bounds."""

    gpus: int = 1
    gpu_memory_gb: float = 0.0
    cores: int = 0
    memory_gb: float = 0.0

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("gpus", self.gpus, 1, MAX_GPUS),
            ("gpu_memory_gb", self.gpu_memory_gb, 0.0, MAX_GPU_MEMORY_GB),
            ("cores", self.cores, 0, MAX_CORES),
            ("memory_gb", self.memory_gb, 0.0, MAX_MEMORY_GB),
        ):
            if not (math.isfinite(value) and low <= value <= high):
                raise JobError(name, f"{name} must be between {low:g} and {high:g}, not {value!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A machine that can take the job: the card rows it would take, the free memory of the
    tightest of them and what is left on it, their mean utilisation, the fitting cards, the
    free cores and available memory (NaN: unknown) and why, in words."""

    row: int
    cards: tuple[int, ...]
    tightest_free_bytes: float
    headroom_bytes: float
    cards_utilization: float
    n_fit: int
    cores_free: float
    memory_available_bytes: float
    why: str


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    n_fit: int
    why: str


@dataclass(frozen=True, slots=True)
class Placement:
    """The first `limit` candidates (best first) and rejections (closest first), and how
    many there are in all."""

    job: Job
    candidates: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    n_candidates: int
    n_rejected: int


def place(
    fleet: Fleet,
    excluded: Sequence[str | None],
    job: Job,
    thresholds: LikeThresholds,
    limit: int | None = None,
) -> Placement:
    """Where `job` fits (module docstring). `excluded`: per machine, why it may not be
    recommended (None: available)."""
    n = len(fleet.machines)
    rows = fleet.card_machine
    available = np.array([e is None for e in excluded], dtype=np.bool_).reshape(n)
    need = job.gpu_memory_gb * GIB
    free, util = fleet.card_free_bytes, fleet.card_utilization
    known = ~np.isnan(free)
    busy = util >= thresholds.busy_card_ratio  # NaN compares False: unknown is not busy
    roomy = known & (free >= need)
    fit = roomy & ~busy & available[rows]
    n_fit = np.bincount(rows[fit], minlength=n)

    # The fitting cards by machine, most free memory first: the first `gpus` are taken.
    idx = np.flatnonzero(fit)
    util_key = unknown_last(util)
    idx = idx[np.lexsort((fleet.card_index[idx], util_key[idx], -free[idx], rows[idx]))]
    rank = np.arange(len(idx)) - np.searchsorted(rows[idx], rows[idx], side="left")
    taken = idx[rank < job.gpus]
    tightest = np.full(n, np.nan)
    last = idx[rank == job.gpus - 1]
    tightest[rows[last]] = free[last]
    taken_util = mean_by(rows[taken], util[taken], n)
    # `taken` is sorted by machine: each machine's cards are one slice of it.
    taken_rows = rows[taken]
    bounds = np.stack(
        [
            np.searchsorted(taken_rows, np.arange(n)),
            np.searchsorted(taken_rows, np.arange(n), "right"),
        ],
        axis=1,
    ).tolist()

    cores_free = fleet.cores * (1.0 - fleet.cpu_utilization)
    memory = fleet.memory_available_bytes
    cores_short = (job.cores > 0) & (cores_free < job.cores)  # NaN: not checked
    memory_short = (job.memory_gb > 0) & (memory < job.memory_gb * GIB)
    ok = available & (n_fit >= job.gpus) & ~cores_short & ~memory_short

    cand = np.flatnonzero(ok)
    headroom_gib = np.floor((tightest[cand] - need) / GIB)
    cpu_key = unknown_last(fleet.cpu_utilization[cand])
    cand = cand[np.lexsort((cand, cpu_key, unknown_last(taken_util[cand]), -headroom_gib))]
    out = np.flatnonzero(~ok)
    out = out[np.lexsort((out, -n_fit[out], ~available[out]))]

    counts = _Counts(
        n_cards=np.bincount(rows, minlength=n),
        n_busy=np.bincount(rows[busy], minlength=n),
        n_small=np.bincount(rows[known & ~roomy & ~busy], minlength=n),
        n_silent=np.bincount(rows[~known], minlength=n),
        n_util_unknown=np.bincount(rows[fit & np.isnan(util)], minlength=n),
    )
    candidates = tuple(
        _candidate(
            fleet,
            job,
            int(r),
            tuple(taken[slice(*bounds[r])].tolist()),
            float(tightest[r]),
            float(taken_util[r]),
            int(n_fit[r]),
            float(cores_free[r]),
            counts,
        )
        for r in cand[:limit]
    )
    rejected = tuple(
        Rejection(
            int(r),
            int(n_fit[r]),
            excluded[r] or _shortfall(fleet, job, int(r), n_fit, cores_free, counts, thresholds),
        )
        for r in out[:limit]
    )
    return Placement(job, candidates, rejected, len(cand), len(out))


@dataclass(frozen=True, slots=True)
class _Counts:
    """Per machine: its cards, and those busy, with too little memory free, sending no memory
    value, or fitting with no utilisation value."""

    n_cards: npt.NDArray[np.int64]
    n_busy: npt.NDArray[np.int64]
    n_small: npt.NDArray[np.int64]
    n_silent: npt.NDArray[np.int64]
    n_util_unknown: npt.NDArray[np.int64]


def _candidate(
    fleet: Fleet,
    job: Job,
    row: int,
    cards: tuple[int, ...],
    tightest: float,
    cards_util: float,
    n_fit: int,
    cores_free: float,
    counts: _Counts,
) -> Candidate:
    need = job.gpu_memory_gb * GIB
    names = ", ".join(fleet.cards[c].rsplit("/", 1)[-1] for c in cards)
    parts = [
        f"{n_fit} of {counts.n_cards[row]} cards fit; takes {names}",
        f"the tightest has {gib(tightest)} free ({gib(tightest - need)} to spare)",
    ]
    if not math.isnan(cards_util):
        parts.append(f"those cards {pct(cards_util)} busy")
    if counts.n_util_unknown[row]:
        parts.append(f"utilisation of {counts.n_util_unknown[row]} card(s) unknown")
    cores = float(fleet.cores[row])
    if not math.isnan(cores_free):
        parts.append(f"{cores_free:.0f} of {cores:.0f} cores free")
    elif job.cores > 0:
        parts.append("cores not checked (" + _unknown_cores(fleet, row) + ")")
    memory = float(fleet.memory_available_bytes[row])
    if not math.isnan(memory):
        parts.append(f"{gib(memory)} memory available")
    elif job.memory_gb > 0:
        parts.append("memory not checked (not known)")
    return Candidate(
        row=row,
        cards=cards,
        tightest_free_bytes=tightest,
        headroom_bytes=tightest - need,
        cards_utilization=cards_util,
        n_fit=n_fit,
        cores_free=cores_free,
        memory_available_bytes=memory,
        why="; ".join(parts),
    )


def _shortfall(
    fleet: Fleet,
    job: Job,
    row: int,
    n_fit: npt.NDArray[np.int64],
    cores_free: F64,
    counts: _Counts,
    thresholds: LikeThresholds,
) -> str:
    """Why an available machine cannot take the job."""
    parts = []
    n_cards = int(counts.n_cards[row])
    if counts.n_silent[row] == n_cards:
        parts.append("no GPU memory value yet")
    elif n_fit[row] < job.gpus:
        reasons = []
        if counts.n_busy[row]:
            reasons.append(f"{counts.n_busy[row]} busy (≥ {pct(thresholds.busy_card_ratio)})")
        if counts.n_small[row]:
            reasons.append(f"{counts.n_small[row]} with under {gib(job.gpu_memory_gb * GIB)} free")
        if counts.n_silent[row]:
            reasons.append(f"{counts.n_silent[row]} sending no memory value")
        why = f"{n_fit[row]} of {n_cards} cards fit, {job.gpus} needed"
        parts.append(f"{why} ({', '.join(reasons)})" if reasons else why)
    if job.cores > 0 and cores_free[row] < job.cores:
        parts.append(
            f"{cores_free[row]:.1f} of {fleet.cores[row]:.0f} cores free, {job.cores} needed"
        )
    memory = fleet.memory_available_bytes[row]
    if job.memory_gb > 0 and memory < job.memory_gb * GIB:
        parts.append(f"{gib(float(memory))} memory available, {gib(job.memory_gb * GIB)} needed")
    return "; ".join(parts)


def _unknown_cores(fleet: Fleet, row: int) -> str:
    if math.isnan(fleet.cores[row]):
        return "the inventory gives no core count"
    return "no CPU utilisation value"


def gib(size_bytes: float) -> str:
    """A size in GiB, as the explanations write it.

    >>> gib(81_920 * 2**20), gib(1.5 * 2**30)
    ('80.0 GiB', '1.5 GiB')
    """
    return f"{size_bytes / GIB:.1f} GiB"
