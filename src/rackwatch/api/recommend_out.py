"""The GPU recommendation's answers (`GET /recommend`, `GET /recommend/placement`): their
models, and the answers built from an assessment (`engine/recommend`).

`rackwatch recommend` builds the same answers from the store when no server runs, so both
paths print the same thing. NaN (unknown) is `null`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from rackwatch.engine.recommend import Assessment, Job, Like, Placement

Source = Literal["live", "store"]
LikeLevel = Literal["high", "medium", "low"]
_LEVELS: dict[Like, LikeLevel] = {Like.HIGH: "high", Like.MEDIUM: "medium", Like.LOW: "low"}


class ThresholdsOut(BaseModel):
    high_below_ratio: float = Field(description="Load below this: like index high.")
    low_from_ratio: float = Field(description="Load at or above this: like index low.")
    busy_card_ratio: float = Field(
        description="A card this busy (utilisation) is not offered to a placement."
    )


class RecommendCardOut(BaseModel):
    entity: str
    index: int
    model: str | None
    memory_free_bytes: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None
    utilization_ratio: float | None
    temperature_celsius: float | None
    busy: bool | None = Field(description="Utilisation at or above busy_card_ratio.")


class RecommendMachineOut(BaseModel):
    entity: str
    available: bool
    excluded: str | None = Field(description="Why it is never recommended now (offline...).")
    like_index: LikeLevel | None
    why: str = Field(description="The like index in words, or why the machine is excluded.")
    n_cards: int
    n_cards_expected: int | None = Field(description="The inventory's card count, if it says.")
    gpu_memory_free_bytes: float | None
    gpu_memory_total_bytes: float | None
    gpu_memory_utilization_ratio: float | None
    gpu_utilization_ratio: float | None
    cpu_utilization_ratio: float | None
    cores: int | None
    memory_available_bytes: float | None
    memory_total_bytes: float | None
    last_seen_ms: int | None
    notes: list[str] = Field(description="What is not known, and so not checked.")
    cards: list[RecommendCardOut]


class LikeServerOut(BaseModel):
    rank: int
    entity: str
    gpu_memory_free_bytes: float
    gpu_memory_total_bytes: float | None
    n_cards: int
    gpu_utilization_ratio: float | None
    like_index: LikeLevel | None


class RecommendOut(BaseModel):
    now_ms: int
    source: Source = Field(description="live: the server's live state; store: stored values.")
    thresholds: ThresholdsOut
    like_server: list[LikeServerOut] = Field(description="Top 3 by free GPU memory.")
    counts: dict[str, int] = Field(description="Machines per like index, and excluded.")
    machines: list[RecommendMachineOut]


class JobOut(BaseModel):
    gpus: int
    gpu_memory_gb: float
    cores: int
    memory_gb: float


class CandidateOut(BaseModel):
    rank: int
    entity: str
    like_index: LikeLevel | None
    cards: list[str] = Field(description="The cards the job would take.")
    n_cards_fit: int
    tightest_free_bytes: float
    headroom_bytes: float
    cards_utilization_ratio: float | None
    cores_free: float | None
    memory_available_bytes: float | None
    why: str


class RejectionOut(BaseModel):
    entity: str
    n_cards_fit: int
    why: str


class PlacementOut(BaseModel):
    now_ms: int
    source: Source
    job: JobOut
    thresholds: ThresholdsOut
    n_candidates: int
    n_rejected: int
    candidates: list[CandidateOut] = Field(description="Best first (docs/API.md).")
    rejected: list[RejectionOut] = Field(description="Closest first, excluded machines last.")


def recommend_out(a: Assessment, now_ms: int, source: Source, cards: bool = True) -> RecommendOut:
    """Every machine (by path), like_server and the counts. Cost: one object per machine and
    (with `cards`) per card."""
    fleet, s = a.fleet, a.signals
    per_machine: list[list[RecommendCardOut]] = [[] for _ in fleet.machines]
    n_silent = np.zeros(len(fleet.machines), dtype=np.int64)
    for c, entity in enumerate(fleet.cards):
        row = int(fleet.card_machine[c])
        util = _num(fleet.card_utilization[c])
        free = _num(fleet.card_free_bytes[c])
        if free is None and util is None:
            n_silent[row] += 1
        if cards:
            per_machine[row].append(
                RecommendCardOut(
                    entity=entity,
                    index=int(fleet.card_index[c]),
                    model=fleet.card_model[c],
                    memory_free_bytes=free,
                    memory_used_bytes=_num(fleet.card_used_bytes[c]),
                    memory_total_bytes=_num(fleet.card_total_bytes[c]),
                    utilization_ratio=util,
                    temperature_celsius=_num(fleet.card_temperature_celsius[c]),
                    busy=None if util is None else util >= a.thresholds.busy_card_ratio,
                )
            )
    n_cards = fleet.n_cards
    machines = []
    counts = {"high": 0, "medium": 0, "low": 0, "unknown": 0, "excluded": 0}
    for row, entity in enumerate(fleet.machines):
        level = a.like[row]
        excluded = a.excluded[row]
        counts["excluded" if excluded else str(level) if level else "unknown"] += 1
        expected = int(fleet.expected_cards[row])
        notes = _notes(a, row, int(n_cards[row]), expected, int(n_silent[row]))
        machines.append(
            RecommendMachineOut(
                entity=entity,
                available=excluded is None,
                excluded=excluded,
                like_index=_level(a, row),
                why=a.why(row),
                n_cards=int(n_cards[row]),
                n_cards_expected=None if expected < 0 else expected,
                gpu_memory_free_bytes=_num(s.free_bytes[row]),
                gpu_memory_total_bytes=_num(s.total_bytes[row]),
                gpu_memory_utilization_ratio=_num(s.gpu_memory_utilization[row]),
                gpu_utilization_ratio=_num(s.gpu_utilization[row]),
                cpu_utilization_ratio=_num(s.cpu_utilization[row]),
                cores=_int(fleet.cores[row]),
                memory_available_bytes=_num(fleet.memory_available_bytes[row]),
                memory_total_bytes=_num(fleet.memory_total_bytes[row]),
                last_seen_ms=None if fleet.last_seen_ms[row] < 0 else int(fleet.last_seen_ms[row]),
                notes=notes,
                cards=per_machine[row],
            )
        )
    top = [
        LikeServerOut(
            rank=rank,
            entity=fleet.machines[row],
            gpu_memory_free_bytes=float(s.free_bytes[row]),
            gpu_memory_total_bytes=_num(s.total_bytes[row]),
            n_cards=int(n_cards[row]),
            gpu_utilization_ratio=_num(s.gpu_utilization[row]),
            like_index=_level(a, row),
        )
        for rank, row in enumerate(a.top, start=1)
    ]
    return RecommendOut(
        now_ms=now_ms,
        source=source,
        thresholds=_thresholds(a),
        like_server=top,
        counts=counts,
        machines=machines,
    )


def placement_out(a: Assessment, p: Placement, now_ms: int, source: Source) -> PlacementOut:
    fleet = a.fleet
    return PlacementOut(
        now_ms=now_ms,
        source=source,
        job=job_out(p.job),
        thresholds=_thresholds(a),
        n_candidates=p.n_candidates,
        n_rejected=p.n_rejected,
        candidates=[
            CandidateOut(
                rank=rank,
                entity=fleet.machines[c.row],
                like_index=_level(a, c.row),
                cards=[fleet.cards[k] for k in c.cards],
                n_cards_fit=c.n_fit,
                tightest_free_bytes=c.tightest_free_bytes,
                headroom_bytes=c.headroom_bytes,
                cards_utilization_ratio=_num(c.cards_utilization),
                cores_free=_num(c.cores_free),
                memory_available_bytes=_num(c.memory_available_bytes),
                why=c.why,
            )
            for rank, c in enumerate(p.candidates, start=1)
        ],
        rejected=[
            RejectionOut(entity=fleet.machines[r.row], n_cards_fit=r.n_fit, why=r.why)
            for r in p.rejected
        ],
    )


def job_out(job: Job) -> JobOut:
    return JobOut(
        gpus=job.gpus, gpu_memory_gb=job.gpu_memory_gb, cores=job.cores, memory_gb=job.memory_gb
    )


def _notes(a: Assessment, row: int, n_cards: int, expected: int, n_silent: int) -> list[str]:
    fleet = a.fleet
    notes = []
    if expected > n_cards or n_silent:
        listed = f"the inventory lists {expected}" if expected > n_cards else f"{n_cards} known"
        notes.append(f"{listed} cards, {n_cards - n_silent} send values")
    if math.isnan(fleet.cores[row]):
        notes.append("core count not in the inventory: cores are not checked")
    if math.isnan(fleet.memory_available_bytes[row]):
        notes.append("available memory not known: memory is not checked")
    return notes


def _level(a: Assessment, row: int) -> LikeLevel | None:
    level = a.like[row]
    return None if level is None else _LEVELS[level]


def _thresholds(a: Assessment) -> ThresholdsOut:
    t = a.thresholds
    return ThresholdsOut(
        high_below_ratio=t.high_below_ratio,
        low_from_ratio=t.low_from_ratio,
        busy_card_ratio=t.busy_card_ratio,
    )


def _num(x: float | np.floating) -> float | None:
    value = float(x)
    return value if math.isfinite(value) else None


def _int(x: float | np.floating) -> int | None:
    value = float(x)
    return int(value) if math.isfinite(value) else None
