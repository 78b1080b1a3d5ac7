"""The room as arrays: clusters, racks (with a PDU), servers (two fans each) and one CRAC unit.

Servers are numbered cluster-major, rack-major, slot-minor, so each rack is a contiguous range
(`np.add.reduceat` over `rack_start` gives per-rack sums) and fan `2i`, `2i+1` belong to server
`i`. Static properties (idle/peak power, fan model, heatsink) are drawn once from the seed, with
the ranges our users gave: idle 50-120 W, peak 150-500 W, fans 3-18 W each at high. A GPU
preset's servers also get cards (`gpus.py`); their fans are scaled to the cards' power so that
the airflow per kW, and so the exhaust rise, stays that of the other servers.

>>> topo = build_topology("large", clusters=2, seed=0)
>>> topo.n_servers, topo.n_racks, topo.server_paths[8], topo.fan_paths[1]
(30, 4, 'c01/r02/s01', 'c01/r01/s01/fan2')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.twin.gpus import GpuHardware, draw_gpu_hardware
from rackwatch.twin.physics import LEVEL_SPEED

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

RACK_SLOTS = 10
"""Servers per rack at most; a preset's servers are spread evenly over ceil(n / 10) racks."""
FANS_PER_SERVER = 2
DESIGN_LEVEL = 2
"""Fan level the heatsinks are rated at (medium): the default level and the nominal airflow."""
CPU_POWER_SHARE = 0.6
"""Share of a server's IT power dissipated by its CPU package (the rest: memory, VRM, disks)."""
CPU_RISE_AT_PEAK_C = (52.0, 60.0)
"""CPU package temperature above the inlet air at peak power with the fans at the design level,
drawn per server: a loaded CPU at 70-85 °C with a 20-25 °C inlet (docs/TWIN.md)."""
CRAC_PATH = "room/crac1"
ROOM_PATH = "room"
STREAM_TOPOLOGY = 1


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    n_servers: int
    """Servers per cluster."""
    has_gpus: bool = False


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("small", 5),
        Preset("medium", 10),
        Preset("large", 15),
        Preset("very-large", 20),
    )
}
DEFAULT_PRESET = "very-large"
GPU_PRESETS: dict[str, Preset] = {
    p.name: p for p in (Preset("gpu-fleet", 16, True), Preset("gpu-fleet-large", 64, True))
}
"""GPU servers (docs/TWIN.md, "GPU fleet"); kept apart from PRESETS, which the evaluation
draws its rooms from."""
ALL_PRESETS: dict[str, Preset] = PRESETS | GPU_PRESETS


@dataclass(frozen=True)
class RoomSpec:
    """Room-level constants: CRAC sizing and efficiency, distribution losses."""

    crac_setpoint_c: float = 20.0
    """Supply air: inlets 20-25 °C, inside ASHRAE's recommended 18-27 °C with room for the
    recirculation at the top of the racks (docs/TWIN.md)."""
    crac_cop: float = 4.0
    crac_headroom: float = 1.25
    """CRAC capacity over the room's peak IT heat."""
    crac_blower_share: float = 0.03
    """Blower power as a share of the CRAC capacity (runs whatever the load)."""
    distribution_loss_ratio: float = 0.05
    """UPS and PDU losses as a share of IT power."""
    fixed_share: float = 0.005
    """Lighting and controls, as a share of the CRAC capacity."""
    pdu_headroom: float = 1.1
    """Nominal PDU capacity over the rack's peak power, fans at high included."""


@dataclass(frozen=True, eq=False)
class Topology:
    """Static description of the room. Arrays are indexed by server, fan or rack number."""

    preset: str
    n_clusters: int
    cluster_paths: tuple[str, ...]
    rack_paths: tuple[str, ...]
    server_paths: tuple[str, ...]
    fan_paths: tuple[str, ...]
    server_rack: I64
    server_slot: I64
    """1 at the bottom of the rack."""
    rack_start: I64
    rack_size: I64
    idle_w: F64
    peak_w: F64
    cpu_r_nominal: F64
    """Heatsink thermal resistance (°C/W of CPU power) at nominal airflow."""
    nominal_cfm: F64
    """Server airflow with both fans at the design level."""
    position_weight: F64
    """Recirculation weight of the slot: higher slots breathe more hot-aisle air."""
    neighbour_index: I64
    """(n, 2): servers just below and above (self where there is none)."""
    neighbour_mask: F64
    """(n, 2): 1 where the neighbour exists."""
    fan_max_w: F64
    fan_max_cfm: F64
    fan_max_rpm: F64
    rack_exposure: F64
    """Per-rack hot-aisle exposure (end of row, tile layout): scales recirculation."""
    pdu_capacity_w: F64
    crac_capacity_w: float
    room: RoomSpec = field(default_factory=RoomSpec)
    gpus: GpuHardware | None = None
    """The cards, memory, disk and NIC of every server of a GPU preset; None otherwise."""

    @property
    def n_servers(self) -> int:
        return len(self.server_paths)

    @property
    def n_fans(self) -> int:
        return len(self.fan_paths)

    @property
    def n_racks(self) -> int:
        return len(self.rack_paths)

    @property
    def pdu_paths(self) -> tuple[str, ...]:
        return tuple(f"{rack}/pdu" for rack in self.rack_paths)

    @cached_property
    def server_index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.server_paths)}

    @cached_property
    def fan_index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.fan_paths)}

    @cached_property
    def rack_index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.rack_paths)}

    def inventory(self) -> list[dict[str, Any]]:
        """Every entity with its static attributes, as plain JSON-friendly dicts."""
        room = self.room
        items: list[dict[str, Any]] = [
            {
                "entity": ROOM_PATH,
                "kind": "room",
                "preset": self.preset,
                "clusters": self.n_clusters,
                "distribution_loss_ratio": room.distribution_loss_ratio,
            },
            {
                "entity": CRAC_PATH,
                "kind": "crac",
                "capacity_watts": self.crac_capacity_w,
                "setpoint_celsius": room.crac_setpoint_c,
                "cop": room.crac_cop,
                "blower_watts": room.crac_blower_share * self.crac_capacity_w,
            },
        ]
        items += [{"entity": c, "kind": "cluster"} for c in self.cluster_paths]
        for r, rack in enumerate(self.rack_paths):
            items.append(
                {
                    "entity": rack,
                    "kind": "rack",
                    "slots": RACK_SLOTS,
                    "servers": int(self.rack_size[r]),
                }
            )
            items.append(
                {
                    "entity": f"{rack}/pdu",
                    "kind": "pdu",
                    "capacity_watts": float(self.pdu_capacity_w[r]),
                }
            )
        speeds = LEVEL_SPEED.tolist()
        for s, server in enumerate(self.server_paths):
            items.append(
                {
                    "entity": server,
                    "kind": "server",
                    "rack": self.rack_paths[self.server_rack[s]],
                    "slot": int(self.server_slot[s]),
                    "idle_watts": float(self.idle_w[s]),
                    "peak_watts": float(self.peak_w[s]),
                    "nominal_airflow_cfm": float(self.nominal_cfm[s]),
                    **({} if self.gpus is None else self.gpus.server_attributes(s)),
                }
            )
            for f in (FANS_PER_SERVER * s + k for k in range(FANS_PER_SERVER)):
                max_w, max_cfm = float(self.fan_max_w[f]), float(self.fan_max_cfm[f])
                items.append(
                    {
                        "entity": self.fan_paths[f],
                        "kind": "fan",
                        "server": server,
                        "max_rpm": float(self.fan_max_rpm[f]),
                        "levels": {
                            str(level): {
                                "speed_ratio": v,
                                "power_watts": max_w * v**3,
                                "airflow_cfm": max_cfm * v,
                            }
                            for level, v in enumerate(speeds)
                        },
                    }
                )
        if self.gpus is not None:
            items += self.gpus.items()
        return items


def _rack_sizes(n_servers: int) -> list[int]:
    n_racks = max(1, math.ceil(n_servers / RACK_SLOTS))
    return [len(part) for part in np.array_split(np.arange(n_servers), n_racks)]


def build_topology(
    preset: str = DEFAULT_PRESET, clusters: int = 1, seed: int = 0, room: RoomSpec | None = None
) -> Topology:
    """Lay out `clusters` copies of `preset` and draw each server's hardware from `seed`."""
    if preset not in ALL_PRESETS:
        raise ValueError(f"unknown twin preset {preset!r}; choose one of {sorted(ALL_PRESETS)}")
    if clusters < 1:
        raise ValueError(f"clusters must be at least 1, got {clusters}")
    room = room or RoomSpec()
    sizes = _rack_sizes(ALL_PRESETS[preset].n_servers)
    cluster_paths = tuple(f"c{c + 1:02d}" for c in range(clusters))
    rack_paths = tuple(f"{c}/r{r + 1:02d}" for c in cluster_paths for r in range(len(sizes)))
    rack_size = np.array(sizes * clusters, dtype=np.int64)
    server_rack = np.repeat(np.arange(len(rack_paths)), rack_size)
    rack_start = np.concatenate(([0], np.cumsum(rack_size)[:-1])).astype(np.int64)
    server_slot = np.arange(len(server_rack)) - rack_start[server_rack] + 1
    server_paths = tuple(
        f"{rack_paths[r]}/s{slot:02d}" for r, slot in zip(server_rack, server_slot, strict=True)
    )
    fan_paths = tuple(f"{s}/fan{k + 1}" for s in server_paths for k in range(FANS_PER_SERVER))
    n, n_racks = len(server_paths), len(rack_paths)

    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAM_TOPOLOGY])))
    size = rng.uniform(0.0, 1.0, n)  # one "how big a box" draw keeps idle, peak, fans coherent
    idle_w = np.round(50.0 + 70.0 * size + rng.uniform(-5.0, 5.0, n), 1).clip(50.0, 120.0)
    peak_w = np.round(150.0 + 350.0 * size + rng.uniform(-15.0, 15.0, n), 1).clip(150.0, 500.0)
    fan_size = np.repeat(size, FANS_PER_SERVER)  # both fans of a server are the same model
    fan_max_w = np.round(3.0 + 12.0 * fan_size + rng.uniform(0.0, 3.0, n * FANS_PER_SERVER), 2)
    fan_max_cfm = np.round(20.0 + 20.0 * fan_size, 1)
    fan_max_rpm = np.round(16000.0 - 7000.0 * fan_size, -1)
    gpus = draw_gpu_hardware(server_paths, seed) if ALL_PRESETS[preset].has_gpus else None
    if gpus is not None:  # fans sized to the whole box: the same cfm per kW at peak
        fan_scale = np.repeat(1.0 + gpus.server_max_w / peak_w, FANS_PER_SERVER)
        fan_max_cfm = np.round(fan_max_cfm * fan_scale, 1)
        fan_max_w = np.round(fan_max_w * fan_scale, 2)
    nominal_cfm = FANS_PER_SERVER * LEVEL_SPEED[DESIGN_LEVEL] * fan_max_cfm[::FANS_PER_SERVER]
    cpu_rise_at_peak = rng.uniform(*CPU_RISE_AT_PEAK_C, n)  # °C above inlet, design airflow
    cpu_r_nominal = cpu_rise_at_peak / (CPU_POWER_SHARE * peak_w)
    height = (server_slot - 1) / (RACK_SLOTS - 1)
    position_weight = 0.3 + 1.2 * height**2
    rack_exposure = rng.uniform(0.85, 1.25, n_racks)

    below, above = np.arange(n) - 1, np.arange(n) + 1
    has_below = server_slot > 1
    has_above = server_slot < rack_size[server_rack]
    neighbour_index = np.stack(
        [np.where(has_below, below, np.arange(n)), np.where(has_above, above, np.arange(n))], axis=1
    )
    neighbour_mask = np.stack([has_below, has_above], axis=1).astype(np.float64)

    server_max = peak_w + fan_max_w.reshape(n, FANS_PER_SERVER).sum(axis=1)
    if gpus is not None:
        server_max += gpus.server_max_w
    pdu_capacity_w = np.ceil(np.add.reduceat(server_max, rack_start) * room.pdu_headroom / 100.0)
    crac_capacity_w = math.ceil(float(server_max.sum()) * room.crac_headroom / 1000.0) * 1000.0
    return Topology(
        preset=preset,
        n_clusters=clusters,
        cluster_paths=cluster_paths,
        rack_paths=rack_paths,
        server_paths=server_paths,
        fan_paths=fan_paths,
        server_rack=server_rack,
        server_slot=server_slot.astype(np.int64),
        rack_start=rack_start,
        rack_size=rack_size,
        idle_w=idle_w,
        peak_w=peak_w,
        cpu_r_nominal=cpu_r_nominal,
        nominal_cfm=nominal_cfm,
        position_weight=position_weight,
        neighbour_index=neighbour_index.astype(np.int64),
        neighbour_mask=neighbour_mask,
        fan_max_w=fan_max_w,
        fan_max_cfm=fan_max_cfm,
        fan_max_rpm=fan_max_rpm,
        rack_exposure=rack_exposure,
        pdu_capacity_w=pdu_capacity_w * 100.0,
        crac_capacity_w=crac_capacity_w,
        room=room,
        gpus=gpus,
    )
