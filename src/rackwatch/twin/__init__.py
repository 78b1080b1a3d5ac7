"""The twin: a simulated server room, pure NumPy, deterministic by seed, no I/O.

topology.py   rooms, racks, servers, fans, PDUs, CRAC as arrays (drawn from the seed)
layout.py     which frame column holds which (entity, metric)
physics.py    power, thermal lag, fan affinity, recirculation, CRAC: pure functions
workload.py   daily cycle + Poisson bursts
gpus.py       GPU servers' cards, memory, disk and NIC (drawn from the seed)
jobs.py       the GPU fleet's jobs and their scheduler (first fit)
fleet.py      the GPU fleet over a block: card power and temperature, host memory, disk, network
plant.py      the physics over a block of steps
sensors.py    noise and sensor resolution
faults.py     FAULTS catalogue (kind → FaultSpec), lifetimes; each fault a labelled Event
scenarios.py  named scenarios: a preset and scheduled faults
simulator.py  Twin: run, apply (commands), inject (faults), inventory
"""

from rackwatch.twin.faults import (
    DEFAULT_LIFETIMES,
    FAULTS,
    FaultSpec,
    Lifetime,
    ScheduledFault,
    draw_random_faults,
)
from rackwatch.twin.scenarios import DEFAULT_SCENARIO, SCENARIOS, Scenario
from rackwatch.twin.simulator import DEFAULT_START_MS, Twin, TwinFrame
from rackwatch.twin.topology import (
    ALL_PRESETS,
    DEFAULT_PRESET,
    GPU_PRESETS,
    PRESETS,
    Preset,
    Topology,
    build_topology,
)

__all__ = [
    "ALL_PRESETS",
    "DEFAULT_LIFETIMES",
    "DEFAULT_PRESET",
    "DEFAULT_SCENARIO",
    "DEFAULT_START_MS",
    "FAULTS",
    "GPU_PRESETS",
    "PRESETS",
    "SCENARIOS",
    "FaultSpec",
    "Lifetime",
    "Preset",
    "Scenario",
    "ScheduledFault",
    "Topology",
    "Twin",
    "TwinFrame",
    "build_topology",
    "draw_random_faults",
]
