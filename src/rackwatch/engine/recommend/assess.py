"""One recommendation: the fleet, which machines are excluded and why, every machine's like
index, the top 3 (`like_server`), and placements asked of it.

>>> from rackwatch.engine.recommend.fleet import fleet_layout, gather
>>> keys = [(f"host/{n}/gpu0", "gpu_memory_free_bytes") for n in "abcd"]
>>> fleet = gather(fleet_layout(keys, np.arange(4)), np.full(4, 1),
...                np.array([4.0, 8.0, 6.0, 9.0]) * 2**30, {})
>>> a = assess(fleet, [None, None, None, "in maintenance"])
>>> [fleet.machines[r] for r in a.top]
['host/b', 'host/c', 'host/a']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rackwatch.engine.recommend.fleet import Fleet
from rackwatch.engine.recommend.like import (
    TOP_N,
    Like,
    LikeThresholds,
    Signals,
    level_why,
    levels,
    like_server,
    signals,
)
from rackwatch.engine.recommend.placement import Job, Placement, place


@dataclass(frozen=True, slots=True)
class Assessment:
    """`excluded[row]`: why the machine may not be recommended (None: it may); `like[row]`:
    its like index (None: excluded or nothing known); `top`: rows of like_server, best first."""

    fleet: Fleet
    signals: Signals
    excluded: tuple[str | None, ...]
    like: tuple[Like | None, ...]
    top: tuple[int, ...]
    thresholds: LikeThresholds

    def why(self, row: int) -> str:
        """The like index in words, or why the machine is excluded."""
        excluded = self.excluded[row]
        if excluded is not None:
            return excluded
        return level_why(self.like[row], self.signals, row, self.thresholds)

    def place(self, job: Job, limit: int | None = None) -> Placement:
        return place(self.fleet, self.excluded, job, self.thresholds, limit)


def assess(
    fleet: Fleet,
    excluded: Sequence[str | None],
    thresholds: LikeThresholds | None = None,
    n_top: int = TOP_N,
) -> Assessment:
    """The assessment of `fleet`; `excluded` per machine (`availability.exclusions`)."""
    if len(excluded) != len(fleet.machines):
        raise ValueError(f"{len(excluded)} exclusions for {len(fleet.machines)} machines")
    thresholds = thresholds or LikeThresholds()
    sig = signals(fleet, thresholds.busy_card_ratio)
    available = np.array([e is None for e in excluded], dtype=np.bool_)
    like = [
        level if ok else None
        for level, ok in zip(levels(sig.load, thresholds), available.tolist(), strict=True)
    ]
    return Assessment(
        fleet=fleet,
        signals=sig,
        excluded=tuple(excluded),
        like=tuple(like),
        top=tuple(like_server(sig, available, n_top)),
        thresholds=thresholds,
    )
