"""GPU servers' hardware: the card models, and each server's cards, cores, memory, disk and NIC,
drawn once from the seed (docs/TWIN.md, "GPU fleet", gives the figures and their sources).

A server carries 4 or 8 cards of one model. Cards are numbered server-major, so the cards of
server `i` are `card_start[i] : card_start[i] + server_gpus[i]` and are named like the real GPU
collector names them: `<server path>/gpu<k>`, k from 0. The host-like parts are named like the
host collector names them: the root file system `<server>/disk-root`, the NIC `<server>/net-eth0`.

>>> hw = draw_gpu_hardware(("c01/r01/s01", "c01/r01/s02"), seed=0)
>>> hw.n_cards == int(hw.server_gpus.sum()), hw.card_paths[0], hw.disk_paths[1]
(True, 'c01/r01/s01/gpu0', 'c01/r01/s02/disk-root')
>>> bool((hw.card_max_w <= hw.card_limit_w * 1.06).all() and (hw.card_idle_w > 0).all())
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MIB = 1 << 20
GIB = 1 << 30
STREAM_GPUS = 7
DISK_USABLE_RATIO = 0.9913
"""df's used + free over the disk's size: seed 004's 8 TB disk shows 7,930,348 MB."""
DISK_SEGMENT = "disk-root"
NIC_SEGMENT = "net-eth0"
GPU_METRICS = (
    "gpu_utilization_ratio",
    "gpu_memory_used_bytes",
    "gpu_memory_free_bytes",
    "gpu_memory_utilization_ratio",
    "gpu_temperature_celsius",
    "gpu_power_watts",
    "gpu_power_limit_watts",
)
"""Per card, as `sources/host/gpu.py` names them (no `gpu_fan_ratio`: passive boards have none)."""
HOST_MEMORY_METRICS = ("memory_used_bytes", "memory_available_bytes", "memory_utilization_ratio")
DISK_METRICS = ("disk_used_bytes", "disk_free_bytes", "disk_utilization_ratio")
NIC_METRICS = (
    "network_receive_bytes_per_second",
    "network_transmit_bytes_per_second",
    "network_receive_bytes_total",
    "network_transmit_bytes_total",
)
"""Per server, its disk and its NIC, as `sources/host/system.py` names them."""


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A card model and the servers it comes in."""

    name: str
    """As nvidia-smi prints it."""
    memory_mib: int
    """memory.total as nvidia-smi shows it."""
    idle_w: float
    """Board power of an idle card (P8), as nvidia-smi shows it."""
    limit_w: float
    """Default power limit: the board's maximum power (TDP)."""
    idle_rise_c: float
    """Core temperature above the server's inlet, idle."""
    load_rise_c: float
    """Core temperature above the inlet at the power limit."""
    counts: tuple[int, ...]
    """Cards per server."""
    share: float
    """Share of the fleet's servers."""
    cores: tuple[int, ...]
    memory_gib: tuple[int, ...]
    disk_tb: tuple[float, ...]
    nic_mbps: int
    driver_version: str
    cuda_version: str


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel(
        name="NVIDIA A100-SXM4-80GB",
        memory_mib=81_920,
        idle_w=55.0,
        limit_w=400.0,
        idle_rise_c=12.0,
        load_rise_c=48.0,
        counts=(4, 8),
        share=0.3,
        cores=(64, 128),
        memory_gib=(512, 1024),
        disk_tb=(7.68, 15.36),
        nic_mbps=100_000,
        driver_version="550.54.15",
        cuda_version="12.4",
    ),
    GpuModel(
        name="NVIDIA L40S",
        memory_mib=46_068,
        idle_w=32.0,
        limit_w=350.0,
        idle_rise_c=14.0,
        load_rise_c=50.0,
        counts=(4, 8),
        share=0.25,
        cores=(48, 64),
        memory_gib=(256, 512),
        disk_tb=(3.84, 7.68),
        nic_mbps=25_000,
        driver_version="550.54.15",
        cuda_version="12.4",
    ),
    GpuModel(
        name="NVIDIA RTX A6000",
        memory_mib=49_140,
        idle_w=22.0,
        limit_w=300.0,
        idle_rise_c=15.0,
        load_rise_c=52.0,
        counts=(4, 8),
        share=0.25,
        cores=(32, 64),
        memory_gib=(256, 512),
        disk_tb=(3.84, 7.68),
        nic_mbps=25_000,
        driver_version="550.54.15",
        cuda_version="12.4",
    ),
    GpuModel(
        name="TITAN Xp",
        memory_mib=12_196,
        idle_w=15.0,
        limit_w=250.0,
        idle_rise_c=16.0,
        load_rise_c=55.0,
        counts=(4,),
        share=0.2,
        cores=(20, 40),
        memory_gib=(128,),
        disk_tb=(4.0, 8.0),
        nic_mbps=10_000,
        driver_version="470.239.06",
        cuda_version="11.4",
    ),
)


@dataclass(frozen=True, eq=False)
class GpuHardware:
    """Every GPU server's static parts, arrays by server or by card."""

    server_paths: tuple[str, ...]
    server_model: I64
    """Index into GPU_MODELS."""
    server_gpus: I64
    card_start: I64
    card_server: I64
    card_memory_bytes: I64
    card_idle_w: F64
    card_max_w: F64
    """What the board would draw at full utilisation without a limit; the limit clips it."""
    card_limit_w: F64
    card_idle_rise_c: F64
    card_load_rise_c: F64
    server_cores: I64
    server_memory_bytes: I64
    server_base_memory_bytes: I64
    """Memory the system uses with no job (kernel, daemons, a few logins)."""
    server_disk_bytes: I64
    disk_start_bytes: I64
    disk_clean_to_bytes: I64
    """Where a clean-up brings the disk back to once it passes 90 %."""
    nic_mbps: I64
    net_idle_bps: I64
    """(servers, 2): received and sent per second with no job (monitoring, logins, NFS)."""
    net_start_bytes: I64
    """(servers, 2): the counters at the start (the NIC has been up for weeks)."""

    @property
    def n_servers(self) -> int:
        return len(self.server_paths)

    @property
    def n_cards(self) -> int:
        return len(self.card_server)

    @cached_property
    def card_index(self) -> I64:
        """Each card's number inside its server (the k of gpu<k>)."""
        return np.arange(self.n_cards) - self.card_start[self.card_server]

    @cached_property
    def card_paths(self) -> tuple[str, ...]:
        return tuple(
            f"{self.server_paths[s]}/gpu{k}"
            for s, k in zip(self.card_server.tolist(), self.card_index.tolist(), strict=True)
        )

    @cached_property
    def disk_paths(self) -> tuple[str, ...]:
        return tuple(f"{s}/{DISK_SEGMENT}" for s in self.server_paths)

    @cached_property
    def nic_paths(self) -> tuple[str, ...]:
        return tuple(f"{s}/{NIC_SEGMENT}" for s in self.server_paths)

    @cached_property
    def server_max_w(self) -> F64:
        """Most the cards of each server can draw together."""
        return np.add.reduceat(np.minimum(self.card_max_w, self.card_limit_w), self.card_start)

    def model(self, server: int) -> GpuModel:
        return GPU_MODELS[int(self.server_model[server])]

    def server_attributes(self, server: int) -> dict[str, Any]:
        """What a GPU server adds to its inventory item (seed 004's static server data)."""
        model = self.model(server)
        return {
            "gpu_count": int(self.server_gpus[server]),
            "gpu_model": model.name,
            "gpu_memory_total_bytes": int(model.memory_mib) * MIB,
            "cuda_version": model.cuda_version,
            "driver_version": model.driver_version,
            "logical_cores": int(self.server_cores[server]),
            "memory_total_bytes": int(self.server_memory_bytes[server]),
            "disk_total_bytes": int(self.server_disk_bytes[server]),
        }

    def items(self) -> list[dict[str, Any]]:
        """One item per card (the GPU collector's shape), disk and NIC (the host collector's)."""
        items: list[dict[str, Any]] = []
        for c, path in enumerate(self.card_paths):
            s = int(self.card_server[c])
            model = self.model(s)
            items.append(
                {
                    "entity": path,
                    "kind": "gpu",
                    "server": self.server_paths[s],
                    "index": int(self.card_index[c]),
                    "name": model.name,
                    "uuid": _uuid(path),
                    "memory_total_bytes": int(self.card_memory_bytes[c]),
                    "power_limit_default_watts": float(self.card_limit_w[c]),
                    "driver_version": model.driver_version,
                    "cuda_version": model.cuda_version,
                    "backend": "twin",
                }
            )
        for s, server in enumerate(self.server_paths):
            items.append(
                {
                    "entity": self.disk_paths[s],
                    "kind": "disk",
                    "server": server,
                    "mountpoint": "/",
                    "total_bytes": int(self.server_disk_bytes[s]),
                }
            )
            items.append(
                {
                    "entity": self.nic_paths[s],
                    "kind": "nic",
                    "server": server,
                    "interface": "eth0",
                    "speed_mbps": int(self.nic_mbps[s]),
                }
            )
        return items


def _uuid(path: str) -> str:
    """A stable board id in nvidia-smi's form, from the card's path."""
    h = hashlib.sha256(path.encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def draw_gpu_hardware(server_paths: tuple[str, ...], seed: int) -> GpuHardware:
    """Give every server a model, its cards and its host parts, from `seed` (own stream)."""
    n = len(server_paths)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAM_GPUS])))
    shares = np.array([m.share for m in GPU_MODELS])
    server_model = rng.choice(len(GPU_MODELS), size=n, p=shares / shares.sum()).astype(np.int64)
    pick = rng.uniform(0.0, 1.0, (n, 4))  # one draw per choice below, whatever the model

    def choose(options: tuple[Any, ...], u: float) -> Any:
        return options[min(int(u * len(options)), len(options) - 1)]

    models = [GPU_MODELS[m] for m in server_model.tolist()]
    gpus = np.array([choose(m.counts, u) for m, u in zip(models, pick[:, 0], strict=True)])
    cores = np.array([choose(m.cores, u) for m, u in zip(models, pick[:, 1], strict=True)])
    memory_gib = np.array(
        [choose(m.memory_gib, u) for m, u in zip(models, pick[:, 2], strict=True)]
    )
    disk_tb = np.array([choose(m.disk_tb, u) for m, u in zip(models, pick[:, 3], strict=True)])
    card_server = np.repeat(np.arange(n), gpus).astype(np.int64)
    card_start = np.concatenate(([0], np.cumsum(gpus)[:-1])).astype(np.int64)
    n_cards = len(card_server)

    per_card = server_model[card_server]
    spec = np.array(
        [[m.memory_mib, m.idle_w, m.limit_w, m.idle_rise_c, m.load_rise_c] for m in GPU_MODELS]
    )[per_card]
    limit_w = spec[:, 2]
    # boards of one model differ a little: some reach their limit at full load, some do not
    max_w = np.round(limit_w * rng.uniform(0.96, 1.05, n_cards), 1)
    idle_w = np.round(spec[:, 1] * rng.uniform(0.85, 1.15, n_cards), 1)
    idle_rise = spec[:, 3] + rng.uniform(-1.5, 1.5, n_cards)
    load_rise = spec[:, 4] + rng.uniform(-2.0, 2.0, n_cards)

    memory_bytes = memory_gib.astype(np.int64) * GIB
    base_memory = (rng.uniform(0.02, 0.05, n) * memory_bytes).astype(np.int64) + 2 * GIB
    disk_bytes = np.rint(disk_tb * 1e12 * DISK_USABLE_RATIO).astype(np.int64)
    disk_start = (rng.uniform(0.30, 0.80, n) * disk_bytes).astype(np.int64)
    clean_to = (rng.uniform(0.50, 0.70, n) * disk_bytes).astype(np.int64)
    net_idle = np.rint(rng.uniform(5e3, 5e4, (n, 2))).astype(np.int64)
    net_start = np.rint(rng.uniform(1e11, 5e12, (n, 2))).astype(np.int64)
    return GpuHardware(
        server_paths=tuple(server_paths),
        server_model=server_model,
        server_gpus=gpus.astype(np.int64),
        card_start=card_start,
        card_server=card_server,
        card_memory_bytes=spec[:, 0].astype(np.int64) * MIB,
        card_idle_w=idle_w,
        card_max_w=max_w,
        card_limit_w=limit_w.copy(),
        card_idle_rise_c=idle_rise,
        card_load_rise_c=load_rise,
        server_cores=cores.astype(np.int64),
        server_memory_bytes=memory_bytes,
        server_base_memory_bytes=base_memory,
        server_disk_bytes=disk_bytes,
        disk_start_bytes=disk_start,
        disk_clean_to_bytes=clean_to,
        nic_mbps=np.array([m.nic_mbps for m in models], dtype=np.int64),
        net_idle_bps=net_idle,
        net_start_bytes=net_start,
    )
