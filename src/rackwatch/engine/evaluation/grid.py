"""The runs of `rackwatch evaluate`: which rooms, which faults, how long, which seeds.

Per seed (2000 onward: the defaults were tuned on seeds 0-5 and 1000-1002 and the predictor
measured on 100-119, so these are never used for tuning):

- **protocols**: seed 000's four test protocols on each of the four presets, the faults
  re-targeted to the smaller rooms (`retarget.py`), each for its own length: `fan-fail` 2 h,
  `sensor-drift` 8 h, `crac-degraded` 5 h (the CRAC degrades from 1 h to 5 h),
  `burst-fan-degradation` 16 h (its fan stops after 15.5 h);
- **fault-free**: each preset for 6 h from a drawn hour of the day, for the false alarms;
- **catalogue**: one run per fault kind of the twin's catalogue, on a drawn preset, target,
  hour of the day and start (40-60 min in), with drawn parameters where the kind has a range
  worth testing (the sensor's metric, a load burst's size and length, a fan's wear rate);
  watched until its end (at most 90 min; a drift 6 h) plus the grace.

The draws come from `numpy.random.default_rng([seed, crc32(kind)])`: one kind's draw does not
depend on the others. `quick` is a grid of a few short runs on the small room, for tests.

>>> specs = build_grid([2000], quick=True)
>>> [s.name for s in specs][:3]
['fan-fail/small/2000', 'fault-free/small/2000', 'fan_off/2000']
>>> sorted({k for s in build_grid([2000]) for k in s.kinds}) == sorted(FAULTS)
True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rackwatch.engine.evaluation.match import GRACE_S
from rackwatch.engine.evaluation.retarget import retarget
from rackwatch.twin import DEFAULT_START_MS, FAULTS, PRESETS, SCENARIOS, ScheduledFault
from rackwatch.twin.faults import candidates
from rackwatch.twin.topology import build_topology

FIRST_SEED = 2000
STEP_S = 5.0
HOUR_S = 3600.0
PROTOCOL_HOURS: dict[str, float] = {
    "fan-fail": 2.0,
    "sensor-drift": 8.0,
    "crac-degraded": 5.0,
    "burst-fan-degradation": 16.0,
}
"""Seed 000's protocols and how long each runs."""
FAULT_FREE_HOURS = 6.0
FAULT_FREE = "fault-free"
"""The name `--only` gives the fault-free runs."""
SENSOR_METRICS = ("cpu_temperature_celsius", "power_watts", "airflow_cfm")
"""The three sensors seed 000 gives every server: a stuck or NULL one is drawn among them."""
OPEN_ENDED_S: dict[str, float] = {
    "fan_off": HOUR_S,
    "disk_failure": HOUR_S,
    "sensor_drift": 6 * HOUR_S,
}
"""How long a fault with no planned end is watched (a drift is slow to show)."""
MAX_WATCH_S = 1.5 * HOUR_S
MIN_WATCH_S = 1800.0
WEAR_HOURS = (3.0, 5.0)
"""A catalogue wear run stops its fan after 3-5 h (the protocol's takes 15 h)."""
OFFSET_MIN = (40.0, 60.0)
"""A catalogue fault starts this many minutes in (after the 30-min warm-up)."""
QUICK_KINDS = ("fan_off", "sensor_null", "disk_failure", "load_burst")
QUICK_HOURS = 1.25


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run: a twin of `preset` and `seed` from `start_ms` for `duration_s`, with faults."""

    name: str
    group: str
    """protocol, fault-free or catalogue."""
    preset: str
    seed: int
    duration_s: float
    faults: tuple[ScheduledFault, ...] = ()
    start_ms: int = DEFAULT_START_MS

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(f.kind for f in self.faults)

    @property
    def n_steps(self) -> int:
        return math.ceil(self.duration_s / STEP_S - 1e-9)

    @property
    def cost(self) -> float:
        """Relative cost: simulated hours (the per-step overhead dominates over room size)."""
        return self.duration_s / HOUR_S


def seeds_from(n: int, first: int = FIRST_SEED) -> list[int]:
    return list(range(first, first + n))


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _start_ms(rng: np.random.Generator) -> int:
    """A drawn hour of the day (the load peaks near 15:00 UTC)."""
    return DEFAULT_START_MS + int(rng.integers(0, 24)) * 3_600_000


def _on_step(seconds: float) -> float:
    return round(seconds / STEP_S) * STEP_S


def protocol_runs(seed: int, presets: Iterable[str] = PRESETS) -> list[RunSpec]:
    """Each seed-000 protocol on each preset."""
    runs = []
    for protocol, hours in PROTOCOL_HOURS.items():
        for preset in presets:
            topo = build_topology(preset, 1, seed)
            faults = retarget(SCENARIOS[protocol].faults, topo)
            name = f"{protocol}/{preset}/{seed}"
            runs.append(RunSpec(name, "protocol", preset, seed, hours * HOUR_S, faults))
    return runs


def fault_free_runs(
    seed: int, presets: Iterable[str] = PRESETS, hours: float = FAULT_FREE_HOURS
) -> list[RunSpec]:
    return [
        RunSpec(
            f"{FAULT_FREE}/{preset}/{seed}",
            FAULT_FREE,
            preset,
            seed,
            hours * HOUR_S,
            start_ms=_start_ms(_rng(seed, f"{FAULT_FREE}/{preset}")),
        )
        for preset in presets
    ]


def _params(kind: str, rng: np.random.Generator, n_servers: int) -> dict[str, Any]:
    if kind in ("sensor_stuck", "sensor_null"):
        return {"metric": str(rng.choice(SENSOR_METRICS))}
    if kind == "load_burst":
        return {
            "n_servers": int(rng.integers(1, min(10, n_servers) + 1)),
            "duration_s": _on_step(float(rng.uniform(120.0, 1800.0))),
        }
    if kind == "fan_degradation":
        while True:
            step_ratio = round(float(rng.uniform(0.02, 0.04)), 4)
            interval_s = _on_step(float(rng.uniform(600.0, 1200.0)))
            n = math.ceil(0.6 / step_ratio - 1e-9)
            if WEAR_HOURS[0] * HOUR_S <= n * interval_s <= WEAR_HOURS[1] * HOUR_S:
                return {"step_ratio": step_ratio, "interval_s": interval_s}
    return {}


def _watch_s(kind: str, params: dict[str, Any]) -> float:
    """How long after its start a catalogue fault is watched."""
    spec = FAULTS[kind]
    planned = spec.planned_duration_s(spec.merge(params))
    if kind == "fan_degradation":
        return float(planned or 0.0) + 2 * GRACE_S  # until it stops, the failover and the grace
    span = OPEN_ENDED_S[kind] if planned is None else min(planned, MAX_WATCH_S)
    return max(span + GRACE_S, MIN_WATCH_S)


def catalogue_run(kind: str, seed: int, *, quick: bool = False) -> RunSpec:
    """One fault of `kind` on a drawn preset, target, start and parameters."""
    rng = _rng(seed, kind)
    preset = "small" if quick else str(rng.choice(list(PRESETS)))
    topo = build_topology(preset, 1, seed)
    params = _params(kind, rng, topo.n_servers)
    if kind == "load_burst":
        entity = topo.cluster_paths[0]
    else:
        entity = str(rng.choice(candidates(FAULTS[kind].target, topo)))
    low, high = (60.0 * m for m in OFFSET_MIN)
    offset_s = _on_step(45 * 60.0 if quick else float(rng.uniform(low, high)))
    watch_s = min(_watch_s(kind, params), MIN_WATCH_S) if quick else _watch_s(kind, params)
    return RunSpec(
        f"{kind}/{seed}",
        "catalogue",
        preset,
        seed,
        _on_step(offset_s + watch_s),
        (ScheduledFault(kind, entity, offset_s, params),),
        start_ms=_start_ms(rng),
    )


def quick_runs(seed: int, kinds: Sequence[str] = QUICK_KINDS) -> list[RunSpec]:
    """A few short runs on the small room: the tests' grid."""
    faults = SCENARIOS["fan-fail"].faults
    return [
        RunSpec(f"fan-fail/small/{seed}", "protocol", "small", seed, QUICK_HOURS * HOUR_S, faults),
        *fault_free_runs(seed, ("small",), QUICK_HOURS),
        *(catalogue_run(kind, seed, quick=True) for kind in kinds),
    ]


def build_grid(
    seeds: Sequence[int], *, quick: bool = False, only: Iterable[str] | None = None
) -> list[RunSpec]:
    """Every run for `seeds`; with `only` (fault kinds, or `fault-free`), the runs that hold
    one of them."""
    wanted = None if only is None else frozenset(only)
    unknown = set() if wanted is None else wanted - set(FAULTS) - {FAULT_FREE}
    if unknown:
        raise ValueError(
            f"unknown fault kind {', '.join(sorted(unknown))}: "
            f"choose from {', '.join(sorted(FAULTS))} or {FAULT_FREE}"
        )
    runs: list[RunSpec] = []
    for seed in seeds:
        if quick:
            kinds = QUICK_KINDS if wanted is None else tuple(sorted(wanted - {FAULT_FREE}))
            runs += quick_runs(seed, kinds)
        else:
            runs += protocol_runs(seed)
            runs += fault_free_runs(seed)
            runs += [catalogue_run(kind, seed) for kind in FAULTS]
    if wanted is None:
        return runs
    return [
        r for r in runs if (r.kinds & wanted) or (r.group == FAULT_FREE and FAULT_FREE in wanted)
    ]
