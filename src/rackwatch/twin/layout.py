"""Which columns of a twin frame hold which series.

Columns are grouped by metric (all servers' CPU temperatures, then all inlets, ...), so the
physics writes one contiguous block per metric and noise/rounding are applied per block. A GPU
room adds its cards', hosts', disks' and NICs' series after the others, so a plain room's
columns are the same whether or not GPU rooms exist.

>>> from rackwatch.twin.topology import build_topology
>>> layout = SeriesLayout.of(build_topology("small"))
>>> layout.n_series, layout.keys[0], layout.blocks["fan_rpm"]
(72, SeriesKey(entity='c01/r01/s01', metric='cpu_temperature_celsius'), slice(45, 55, None))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from rackwatch.model.series import SeriesKey
from rackwatch.twin.gpus import DISK_METRICS, GPU_METRICS, HOST_MEMORY_METRICS, NIC_METRICS
from rackwatch.twin.topology import CRAC_PATH, ROOM_PATH, Topology

SERVER_METRICS = (
    "cpu_temperature_celsius",
    "inlet_temperature_celsius",
    "chassis_temperature_celsius",
    "power_watts",
    "airflow_cfm",
    "cpu_utilization_ratio",
    "disk_ok",
)
FAN_METRICS = ("fan_level", "fan_rpm", "fan_power_watts")
PDU_METRICS = ("pdu_power_watts", "pdu_capacity_watts")
CRAC_METRICS = ("crac_supply_temperature_celsius", "crac_power_watts")
ROOM_METRICS = ("it_power_watts", "facility_power_watts", "pue_ratio")
ALL_METRICS = SERVER_METRICS + FAN_METRICS + PDU_METRICS + CRAC_METRICS + ROOM_METRICS


@dataclass(frozen=True, eq=False)
class SeriesLayout:
    """The frame's column order: `keys[j]` is column j; `blocks[metric]` its column range."""

    keys: tuple[SeriesKey, ...]
    blocks: dict[str, slice]

    @classmethod
    def of(cls, topo: Topology) -> SeriesLayout:
        groups: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
            (SERVER_METRICS, topo.server_paths),
            (FAN_METRICS, topo.fan_paths),
            (PDU_METRICS, topo.pdu_paths),
            (CRAC_METRICS, (CRAC_PATH,)),
            (ROOM_METRICS, (ROOM_PATH,)),
        ]
        gpus = topo.gpus
        if gpus is not None:
            groups += [
                (GPU_METRICS, gpus.card_paths),
                (HOST_MEMORY_METRICS, gpus.server_paths),
                (DISK_METRICS, gpus.disk_paths),
                (NIC_METRICS, gpus.nic_paths),
            ]
        keys: list[SeriesKey] = []
        blocks: dict[str, slice] = {}
        for metrics, entities in groups:
            for metric in metrics:
                blocks[metric] = slice(len(keys), len(keys) + len(entities))
                keys.extend(SeriesKey(entity, metric) for entity in entities)
        return cls(tuple(keys), blocks)

    @property
    def n_series(self) -> int:
        return len(self.keys)

    @cached_property
    def column(self) -> dict[SeriesKey, int]:
        return {key: j for j, key in enumerate(self.keys)}

    def columns_under(self, entity: str) -> npt.NDArray[np.int64]:
        """Columns whose entity is `entity` or lies below it in the path hierarchy."""
        prefix = entity + "/"
        return np.array(
            [
                j
                for j, key in enumerate(self.keys)
                if key.entity == entity or key.entity.startswith(prefix)
            ],
            dtype=np.int64,
        )
