"""The GPU fleet over a block of steps: its jobs in, the cards' and hosts' true values out.

    card power   = idle + utilisation x (max - idle), at most the power limit
    card temp    = inlet + (a + b x power), lagged (tau 60 s); a, b put the card at its idle
                   rise at idle power and its load rise at the limit
    server power = the plant's (CPU, fans) + its cards' power: the PDU, the room, the CRAC and
                   the exhaust air follow it
    server CPU   = the background workload + the busy cores of its jobs

Host memory is the system's own plus the jobs'; the disk grows with what running jobs write
and shrinks when they end or when it is cleaned; the NIC carries what the jobs read and write.
Memory, network and the cards' power readings get per-step jitter from their own noise stream,
drawn per page of steps (the sensors' page): a counter stays exactly the sum of the rates it
reports, a power reading stays under the card's limit, and nothing depends on how a run is cut
into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rackwatch.model.records import Event
from rackwatch.twin import physics as ph
from rackwatch.twin.gpus import GpuHardware
from rackwatch.twin.jobs import JobBlock, JobParams, JobScheduler
from rackwatch.twin.workload import WorkloadParams

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

STREAM_FLEET_NOISE = 9
TAU_GPU_S = 60.0
"""A card's core settles within a minute or two of a load step."""
NETWORK_JITTER = 0.2
"""Relative per-step spread of the NIC's traffic."""
MEMORY_JITTER = 0.05
"""Per-step spread of the system's own memory, as a share of it."""
POWER_JITTER = 0.01
"""Relative spread of a card's power reading (NVML averages over about a second)."""
BACKGROUND = WorkloadParams(
    base_range=(0.01, 0.04),
    amplitude_range=(0.01, 0.05),
    burst_rate_per_hour=0.3,
    burst_mean_duration_s=300.0,
    burst_load_range=(0.03, 0.10),
)
"""CPU load of a GPU server without its jobs: logins, monitoring, editors."""


@dataclass(frozen=True, slots=True)
class FleetBlock:
    """The jobs of a block and what they draw: (steps, cards) and (steps, servers)."""

    jobs: JobBlock
    card_w: F64
    server_w: F64

    def cpu_utilization(self, background: F64) -> F64:
        """The servers' CPU utilisation: background plus their jobs' busy cores, at most 1."""
        u = background + self.jobs.cpu_load
        np.minimum(u, 1.0, out=u)
        return u


class GpuFleet:
    """The cards and hosts of a GPU room; `advance` then `truth`, once per block, in order."""

    def __init__(
        self,
        hardware: GpuHardware,
        seed: int,
        start_ms: int,
        step_ms: int,
        page_steps: int,
        jobs: JobParams | None = None,
    ) -> None:
        self.hw = hw = hardware
        self.seed = seed
        self.step_s = step_ms / 1000.0
        self.page_steps = page_steps
        self.scheduler = JobScheduler(hw, seed, start_ms, step_ms, jobs)
        self.alpha = ph.lag_factor(self.step_s, np.full(hw.n_cards, TAU_GPU_S))
        slope = (hw.card_load_rise_c - hw.card_idle_rise_c) / (hw.card_limit_w - hw.card_idle_w)
        self._rise_slope = slope
        self._rise_offset = hw.card_idle_rise_c - slope * hw.card_idle_w
        self._rise_state: F64 | None = None
        self._net_total = hw.net_start_bytes.copy()
        self._nic_bps = hw.nic_mbps * 125_000  # Mb/s to bytes per second
        self._noise_page = -1
        self._noise: F32 = np.zeros((0, 0), dtype=np.float32)
        self._events: list[Event] = []

    def drain_events(self) -> list[Event]:
        """The job events of the blocks advanced since the last call."""
        events, self._events = self._events, []
        return events

    def advance(self, k0: int, n_steps: int) -> FleetBlock:
        """Run the scheduler over the block; the cards' power by card and by server."""
        hw = self.hw
        jobs = self.scheduler.block(k0, n_steps)
        self._events += jobs.events
        card_w = ph.gpu_power(hw.card_idle_w, hw.card_max_w, hw.card_limit_w, jobs.card_utilization)
        return FleetBlock(jobs, card_w, np.add.reduceat(card_w, hw.card_start, axis=1))

    def truth(self, block: FleetBlock, inlet: F64, k0: int) -> dict[str, F64]:
        """True values of the fleet's series, keyed by metric; `inlet` is (steps, servers)."""
        hw, jobs = self.hw, block.jobs
        n_steps = inlet.shape[0]
        steady = self._rise_offset + self._rise_slope * block.card_w
        lagged = ph.first_order_lag(
            steady, steady[0] if self._rise_state is None else self._rise_state, self.alpha
        )
        self._rise_state = lagged[-1].copy()
        temperature = lagged + inlet[:, hw.card_server]
        card_total = hw.card_memory_bytes.astype(np.float64)
        card_used = jobs.card_memory.astype(np.float64)

        noise = self._noise_rows(k0, n_steps)
        n = hw.n_servers
        power = block.card_w * (1.0 + POWER_JITTER * noise[:, 3 * n :])
        np.clip(power, 0.0, hw.card_limit_w, out=power)
        total = hw.server_memory_bytes
        jitter = np.rint(noise[:, 2 * n : 3 * n] * MEMORY_JITTER * hw.server_base_memory_bytes)
        memory = np.clip(hw.server_base_memory_bytes + jobs.memory + jitter, 0, total)
        disk_total = hw.server_disk_bytes.astype(np.float64)
        disk = jobs.disk.astype(np.float64)
        rates: dict[str, F64] = {}
        for d, direction in enumerate(("receive", "transmit")):
            wanted = jobs.receive_bps if d == 0 else jobs.transmit_bps
            bps = (wanted + hw.net_idle_bps[:, d]) * (
                1.0 + NETWORK_JITTER * noise[:, d * n : (d + 1) * n]
            )
            per_step = np.rint(np.clip(bps, 0.0, self._nic_bps) * self.step_s).astype(np.int64)
            counter = np.cumsum(per_step, axis=0)  # whole bytes: exact whatever the blocks
            counter += self._net_total[:, d]
            self._net_total[:, d] = counter[-1]
            rates[f"network_{direction}_bytes_per_second"] = per_step / self.step_s
            rates[f"network_{direction}_bytes_total"] = counter.astype(np.float64)
        return {
            "gpu_utilization_ratio": jobs.card_utilization,
            "gpu_memory_used_bytes": card_used,
            "gpu_memory_free_bytes": card_total - card_used,
            "gpu_memory_utilization_ratio": card_used / card_total,
            "gpu_temperature_celsius": temperature,
            "gpu_power_watts": power,
            "gpu_power_limit_watts": np.broadcast_to(hw.card_limit_w, (n_steps, hw.n_cards)),
            "memory_used_bytes": memory,
            "memory_available_bytes": total - memory,
            "memory_utilization_ratio": memory / total,
            "disk_used_bytes": disk,
            "disk_free_bytes": disk_total - disk,
            "disk_utilization_ratio": disk / disk_total,
            **rates,
        }

    def _noise_rows(self, k0: int, n_steps: int) -> F32:
        page, row = divmod(k0, self.page_steps)
        if row + n_steps > self.page_steps:
            raise ValueError("a fleet block must not cross a noise page")
        if page != self._noise_page:
            rng = np.random.Generator(
                np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_FLEET_NOISE, page]))
            )
            shape = (self.page_steps, 3 * self.hw.n_servers + self.hw.n_cards)
            self._noise = rng.standard_normal(shape, dtype=np.float32)
            self._noise_page = page
        return self._noise[row : row + n_steps]
