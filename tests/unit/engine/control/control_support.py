"""Helpers for the controller tests: a small layout and observations built from plain lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rackwatch.engine.control import FanLayout, Observation

SERVERS = ("c01/r01/s01", "c01/r01/s02", "c01/r01/s03")


def make_layout(servers: Sequence[str] = SERVERS) -> FanLayout:
    fans = tuple(f"{s}/fan{k}" for s in servers for k in (1, 2))
    return FanLayout(tuple(servers), fans, np.repeat(np.arange(len(servers)), 2))


def observe(
    now_s: float,
    cpu_c: Sequence[float],
    levels: Sequence[float],
    *,
    rpm: Sequence[float] | None = None,
    inlet_c: float | Sequence[float] = 24.0,
    cpu_s: Sequence[float] | None = None,
) -> Observation:
    """An observation at `now_s`; per server CPU, per fan level (rpm 1000 x level by default)."""
    n = len(cpu_c)
    level_arr = np.asarray(levels, dtype=np.float64)
    return Observation(
        now_ms=int(now_s * 1000),
        cpu_c=np.asarray(cpu_c, dtype=np.float64),
        cpu_ms=(
            np.full(n, int(now_s * 1000), dtype=np.int64)
            if cpu_s is None
            else (np.asarray(cpu_s) * 1000).astype(np.int64)
        ),
        inlet_c=np.broadcast_to(np.asarray(inlet_c, dtype=np.float64), (n,)).copy(),
        fan_rpm=level_arr * 1000.0 if rpm is None else np.asarray(rpm, dtype=np.float64),
        fan_level=level_arr,
        fan_level_ms=np.full(len(level_arr), int(now_s * 1000), dtype=np.int64),
    )
