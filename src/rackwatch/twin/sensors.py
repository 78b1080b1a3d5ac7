"""Measurement: true values + small Gaussian noise, rounded to each sensor's resolution.

Noise is realistic and small (0.1-0.15 °C, 1.5 W, 10 rpm) so that series stay smooth and
compress to well under a byte per sample. It is drawn per fixed page of steps from its own RNG
stream, so a step's noise does not depend on how a run is cut into blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rackwatch.model.catalogue import METRICS
from rackwatch.twin.layout import SeriesLayout
from rackwatch.twin.physics import quantize

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
STREAM_NOISE = 6
PAGE_VALUES = 1 << 21
"""Noise values per page (8 MiB of float32): bounds memory at thousands of servers."""
MAX_PAGE_STEPS = 720


@dataclass(frozen=True, slots=True)
class Noise:
    """A sensor's measurement noise and physical range."""

    sigma: float
    """Standard deviation: in the metric's unit, or a share of the value if `relative`."""
    relative: bool = False
    """Relative noise vanishes at zero: a stopped fan reads exactly 0 rpm."""
    low: float = -math.inf
    high: float = math.inf


_POSITIVE = 0.0
NOISE: dict[str, Noise] = {
    "cpu_temperature_celsius": Noise(0.15),
    "inlet_temperature_celsius": Noise(0.1),
    "chassis_temperature_celsius": Noise(0.1),
    "power_watts": Noise(1.5, low=_POSITIVE),
    "airflow_cfm": Noise(0.005, relative=True, low=_POSITIVE),
    "cpu_utilization_ratio": Noise(0.004, low=0.0, high=1.0),
    "disk_ok": Noise(0.0),
    "fan_level": Noise(0.0),
    "fan_rpm": Noise(0.0012, relative=True, low=_POSITIVE),
    "fan_power_watts": Noise(0.01, relative=True, low=_POSITIVE),
    "pdu_power_watts": Noise(2.0, low=_POSITIVE),
    "pdu_capacity_watts": Noise(0.0),
    "crac_supply_temperature_celsius": Noise(0.05),
    "crac_power_watts": Noise(5.0, low=_POSITIVE),
    "it_power_watts": Noise(3.0, low=_POSITIVE),
    "facility_power_watts": Noise(5.0, low=_POSITIVE),
    "pue_ratio": Noise(0.0),
}
"""Each sensor's noise: ~0.1-0.15 °C, 1.5 W, 0.12 % of rpm (≈10 rpm), 0.4 % of utilisation."""
GPU_NOISE: dict[str, Noise] = {
    "gpu_utilization_ratio": Noise(0.03, relative=True, low=0.0, high=1.0),
    "gpu_memory_used_bytes": Noise(0.0),
    "gpu_memory_free_bytes": Noise(0.0),
    "gpu_memory_utilization_ratio": Noise(0.0),
    "gpu_temperature_celsius": Noise(0.5),
    "gpu_power_watts": Noise(0.0),
    "gpu_power_limit_watts": Noise(0.0),
    "memory_used_bytes": Noise(0.0),
    "memory_available_bytes": Noise(0.0),
    "memory_utilization_ratio": Noise(0.0),
    "disk_used_bytes": Noise(0.0),
    "disk_free_bytes": Noise(0.0),
    "disk_utilization_ratio": Noise(0.0),
    "network_receive_bytes_per_second": Noise(0.0),
    "network_transmit_bytes_per_second": Noise(0.0),
    "network_receive_bytes_total": Noise(0.0),
    "network_transmit_bytes_total": Noise(0.0),
}
"""The GPU fleet's: an idle card reads exactly 0 %; the core temperature is read in whole °C.
Power, memory, disk and network carry their own jitter (`fleet.py`: a power reading stays
under the card's limit, a counter the sum of its rates), so the sensor reads them as they are."""
_MODELS = NOISE | GPU_NOISE


def page_steps_for(n_series: int) -> int:
    """Steps per noise page: up to an hour at 5 s, fewer when there are many series."""
    return max(1, min(MAX_PAGE_STEPS, PAGE_VALUES // max(1, n_series)))


class Sensors:
    """Reads a block of true values into the frame's columns."""

    def __init__(self, layout: SeriesLayout, seed: int, page_steps: int) -> None:
        missing = set(layout.blocks) - set(_MODELS)
        if missing:
            raise ValueError(f"no noise model for metrics {sorted(missing)}")
        self.layout = layout
        self.seed = seed
        self.page_steps = page_steps
        self._page_number = -1
        self._page: F32 = np.zeros((0, 0), dtype=np.float32)

    def read(self, truth: Mapping[str, F64], k0: int, out: F64) -> None:
        """Fill `out` (steps, series) for global steps k0…; the block must not cross a page."""
        n_steps = out.shape[0]
        noise = self._noise(k0, n_steps)
        for metric, columns in self.layout.blocks.items():
            block, model, true = out[:, columns], _MODELS[metric], truth[metric]
            if model.sigma == 0.0:
                block[...] = true
            elif model.relative:
                np.multiply(noise[:, columns], model.sigma, out=block)
                block += 1.0
                block *= true
            else:
                np.multiply(noise[:, columns], model.sigma, out=block)
                block += true
            if model.low > -math.inf or model.high < math.inf:
                np.clip(block, model.low, model.high, out=block)
            quantize(block, METRICS[metric].resolution)

    def _noise(self, k0: int, n_steps: int) -> F32:
        page, row = divmod(k0, self.page_steps)
        if row + n_steps > self.page_steps:
            raise ValueError("a sensor block must not cross a noise page")
        if page != self._page_number:
            rng = np.random.Generator(
                np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_NOISE, page]))
            )
            shape = (self.page_steps, self.layout.n_series)
            self._page = rng.standard_normal(shape, dtype=np.float32)
            self._page_number = page
        return self._page[row : row + n_steps]
