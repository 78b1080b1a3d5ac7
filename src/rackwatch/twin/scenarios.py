"""Named scenarios: a preset size and faults scheduled at offsets from the start.

The users' four test protocols (fan fail on a small cluster, sensor drift on a medium one,
degraded air conditioning on a large one, load burst plus progressive fan wear on the default
very large one), the partial network loss, the plain presets with no fault, and the GPU fleets
(seed 004: GPU servers shared by a lab's users through jobs).

>>> sorted(SCENARIOS)[:3]
['burst-fan-degradation', 'crac-degraded', 'fan-fail']
>>> [(f.kind, f.entity) for f in SCENARIOS["fan-fail"].faults]
[('fan_off', 'c01/r01/s03/fan1')]
"""

from __future__ import annotations

from dataclasses import dataclass

from rackwatch.twin.faults import ScheduledFault
from rackwatch.twin.topology import GPU_PRESETS, PRESETS


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    preset: str
    description: str
    faults: tuple[ScheduledFault, ...] = ()


_PLAIN = tuple(
    Scenario(name, name, f"{preset.n_servers} servers per cluster, no scheduled fault.")
    for name, preset in PRESETS.items()
)
_GPU = tuple(
    Scenario(
        name,
        name,
        f"{preset.n_servers} GPU servers per cluster (4-8 cards each: A100, L40S, RTX A6000, "
        "TITAN Xp) shared by 12 users' jobs, busier in working hours; no scheduled fault.",
    )
    for name, preset in GPU_PRESETS.items()
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        *_PLAIN,
        Scenario(
            "fan-fail",
            "small",
            "One fan of s03 stops at 30 min: its CPU heats by several °C within minutes, power "
            "barely moves. Expected: raise the other fan, migrate jobs, call maintenance.",
            (ScheduledFault("fan_off", "c01/r01/s03/fan1", 1800.0),),
        ),
        Scenario(
            "sensor-drift",
            "medium",
            "s04's CPU probe drifts +0.2 °C/h from 30 min (its chassis probe does not follow); "
            "s02 and s07 get a moderate load rise for 2 h (power and temperature together: real "
            "load); s09's airflow sensor dies at 2 h and reads 0 (sensor, not airflow).",
            (
                ScheduledFault(
                    "sensor_drift",
                    "c01/r01/s04",
                    1800.0,
                    {"metric": "cpu_temperature_celsius", "slope_per_hour": 0.2},
                ),
                ScheduledFault(
                    "load_burst", "c01/r01/s02", 3600.0, {"utilization": 0.75, "duration_s": 7200.0}
                ),
                ScheduledFault(
                    "load_burst", "c01/r01/s07", 3600.0, {"utilization": 0.75, "duration_s": 7200.0}
                ),
                ScheduledFault(
                    "sensor_stuck",
                    "c01/r01/s09",
                    7200.0,
                    {"metric": "airflow_cfm", "value": 0.0, "duration_s": 3600.0},
                ),
            ),
        ),
        Scenario(
            "crac-degraded",
            "large",
            "The CRAC loses 70 % of its capacity over 30 min from 1 h, for 4 h: every inlet and "
            "CPU warms slowly together (a room issue, not a server issue); upper slots most.",
            (ScheduledFault("crac_degradation", "room/crac1", 3600.0),),
        ),
        Scenario(
            "burst-fan-degradation",
            "very-large",
            "c01/r02/s05/fan2 wears from 30 min (-2 % speed every 30 min, off after 15 h); at 1 h "
            "ten servers run at 90 % for 120 s. Expected: predict the fan's failure, plan it.",
            (
                ScheduledFault("fan_degradation", "c01/r02/s05/fan2", 1800.0),
                ScheduledFault("load_burst", "c01", 3600.0, {"n_servers": 10}),
            ),
        ),
        Scenario(
            "network-loss",
            "very-large",
            "Intermittent telemetry loss on 20 % of c01's series, gaps of 10-30 s: for 10 min "
            "from 30 min, then 5 min from 2 h. Absent rows, not NaN.",
            (
                ScheduledFault("telemetry_loss", "c01", 1800.0, {"duration_s": 600.0}),
                ScheduledFault("telemetry_loss", "c01", 7200.0),
            ),
        ),
        *_GPU,
    )
}
DEFAULT_SCENARIO = "very-large"
