"""CPU utilisation of every server: a daily cycle plus Poisson bursts of jobs.

The cycle is analytic in time and the bursts are drawn per fixed page of simulated time (one
RNG stream per page), so the utilisation at a step never depends on how a run is cut into
blocks. Burst loads are multiples of 2⁻¹⁰, which makes their running sums exact.

>>> wl = Workload(n_servers=3, seed=1, start_ms=0, step_s=5.0)
>>> u = wl.utilization(0, 17280)          # one day
>>> bool((u >= 0.02).all() and (u <= 1.0).all()), u.shape
(True, (17280, 3))
>>> bool(u[15 * 720].mean() > u[3 * 720].mean())   # afternoon busier than night
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STREAM_WORKLOAD = 2
STREAM_BURSTS = 3
_LOAD_QUANTUM = 1.0 / 1024.0


@dataclass(frozen=True, slots=True)
class WorkloadParams:
    """Ranges each server's workload is drawn from."""

    base_range: tuple[float, float] = (0.10, 0.25)
    """Night-time utilisation."""
    amplitude_range: tuple[float, float] = (0.15, 0.40)
    """Extra utilisation at the daily peak."""
    peak_hour_utc: float = 15.0
    peak_hour_jitter_h: float = 1.5
    burst_rate_per_hour: float = 0.5
    """Poisson arrival rate of jobs, per server."""
    burst_mean_duration_s: float = 600.0
    """Exponential job duration (capped at one page)."""
    burst_load_range: tuple[float, float] = (0.15, 0.45)
    """Extra utilisation a job adds while it runs."""
    floor: float = 0.02
    page_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Bursts:
    server: I64
    start: I64
    """First step (global index)."""
    end: I64
    """Step after the last one."""
    load: F64


def daily_cycle(hour_utc: F64, peak_hour: F64) -> F64:
    """0 at the quietest hour, 1 at `peak_hour`: 0.5·(1 + cos(2π(h - peak)/24)).

    >>> daily_cycle(np.array([15.0, 3.0]), np.array([15.0])).round(6).tolist()
    [1.0, 0.0]
    """
    return np.asarray(0.5 * (1.0 + np.cos(2.0 * np.pi * (hour_utc - peak_hour) / 24.0)))


class Workload:
    """Utilisation generator for `n_servers`, deterministic by `seed`."""

    def __init__(
        self,
        n_servers: int,
        seed: int,
        start_ms: int,
        step_s: float,
        params: WorkloadParams | None = None,
    ) -> None:
        self.params = p = params or WorkloadParams()
        self.n_servers = n_servers
        self.seed = seed
        self.step_s = step_s
        self.start_s = start_ms / 1000.0
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAM_WORKLOAD])))
        self.base = rng.uniform(*p.base_range, n_servers)
        self.amplitude = rng.uniform(*p.amplitude_range, n_servers)
        peak = p.peak_hour_utc + rng.uniform(-p.peak_hour_jitter_h, p.peak_hour_jitter_h, n_servers)
        angle = 2.0 * np.pi * peak / 24.0
        # cos(a - b) = cos a·cos b + sin a·sin b: two outer products instead of n * steps cosines
        self._cos_peak, self._sin_peak = np.cos(angle), np.sin(angle)
        self.page_steps = max(1, round(p.page_s / step_s))
        self._pages: dict[int, Bursts] = {}

    def utilization(self, k0: int, n_steps: int) -> F64:
        """Utilisation (steps, servers) for global steps k0 … k0 + n_steps - 1."""
        t_s = self.start_s + (k0 + np.arange(n_steps)) * self.step_s
        angle = 2.0 * np.pi * ((t_s / 3600.0) % 24.0) / 24.0
        cos_t, sin_t = np.cos(angle)[:, None], np.sin(angle)[:, None]
        cycle = 0.5 * (1.0 + cos_t * self._cos_peak + sin_t * self._sin_peak)
        u: F64 = self.base + self.amplitude * cycle
        u += self.burst_load(k0, n_steps)
        np.clip(u, self.params.floor, 1.0, out=u)
        return u

    def burst_load(self, k0: int, n_steps: int) -> F64:
        """Sum of running jobs' extra load (steps, servers)."""
        first = max(0, k0 // self.page_steps - 1)  # a job lasts at most a page
        last = (k0 + n_steps - 1) // self.page_steps
        pages = [self._page(p) for p in range(first, last + 1)]
        self._forget_before(first)
        server = np.concatenate([b.server for b in pages])
        start = np.concatenate([b.start for b in pages])
        end = np.concatenate([b.end for b in pages])
        load = np.concatenate([b.load for b in pages])
        live = (start < k0 + n_steps) & (end > k0)
        diff = np.zeros((n_steps + 1, self.n_servers))
        a = np.clip(start[live] - k0, 0, n_steps)
        b = np.clip(end[live] - k0, 0, n_steps)
        np.add.at(diff, (a, server[live]), load[live])
        np.add.at(diff, (b, server[live]), -load[live])
        return np.cumsum(diff[:-1], axis=0)

    def _page(self, page: int) -> Bursts:
        found = self._pages.get(page)
        if found is not None:
            return found
        p = self.params
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_BURSTS, page]))
        )
        counts = rng.poisson(p.burst_rate_per_hour * p.page_s / 3600.0, self.n_servers)
        total = int(counts.sum())
        server = np.repeat(np.arange(self.n_servers), counts)
        start = page * self.page_steps + rng.integers(0, self.page_steps, total)
        duration = np.rint(rng.exponential(p.burst_mean_duration_s, total) / self.step_s)
        end = start + np.clip(duration, 1, self.page_steps).astype(np.int64)
        load = np.round(rng.uniform(*p.burst_load_range, total) / _LOAD_QUANTUM) * _LOAD_QUANTUM
        bursts = Bursts(server, start.astype(np.int64), end, load)
        self._pages[page] = bursts
        return bursts

    def _forget_before(self, page: int) -> None:
        for old in [k for k in self._pages if k < page]:
            del self._pages[old]
