"""Jobs on the GPU fleet: a seeded stream of jobs and the twin's own scheduler (first fit).

Arrivals are drawn per hour of simulated time from their own RNG stream: a Poisson count whose
rate follows the working day (busiest near 14:00 UTC, quieter at night and at weekends), at
uniform steps of the hour. So they never depend on how a run is cut into blocks. The
scheduler's state changes only at the steps where a job arrives or ends; `block` visits those
steps in order (each placement a first fit vectorised over the cards) and copies the state into
the rows in between. Everything it adds and removes is an integer (bytes, cores, bytes per
second, utilisation in 1/1024), so a released card is exactly free again and the result is the
same bit for bit however the steps are grouped.

A job asks for 1, 2, 4 or 8 cards (all on one server), a share of each card's memory, CPU cores
and memory per card (capped at the server's share per card, as a cluster's GPU-to-CPU binding
does), and runs for its duration. A single-card job may share a card with another one when
their memory fits; a multi-card job takes whole cards. A job that fits nowhere waits, first
come first served with backfill, and is given up after `max_wait_h`.

>>> from rackwatch.twin.gpus import draw_gpu_hardware
>>> hw = draw_gpu_hardware(tuple(f"c01/r01/s{i:02d}" for i in range(1, 9)), seed=1)
>>> sched = JobScheduler(hw, seed=1, start_ms=0, step_ms=5000)
>>> day = sched.block(0, 17280)
>>> bool((day.card_memory <= hw.card_memory_bytes).all()), len(day.events) > 50
(True, True)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.model.records import Event, EventKind
from rackwatch.twin.gpus import GIB, GpuHardware

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STREAM_JOBS = 8
UTIL_UNITS = 1024
"""Utilisation and CPU load are counted in 1/1024: exact sums."""
SLOTS_PER_CARD = 2
"""A card takes two single-card jobs; a multi-card job takes both slots."""
DISK_CLEAN_RATIO = 0.9
"""A disk past 90 % is cleaned (old checkpoints deleted) at the next job event of the fleet."""
USERS = (
    "zhang.wei",
    "li.na",
    "wang.fang",
    "liu.yang",
    "chen.jing",
    "yang.lei",
    "zhao.min",
    "huang.yu",
    "zhou.tao",
    "xu.hui",
    "sun.qiang",
    "ma.lin",
)
USER_WEIGHTS = tuple(1.0 / (k + 1) ** 0.8 for k in range(len(USERS)))
"""A few heavy users, a long tail (a lab's usual mix)."""


@dataclass(frozen=True, slots=True)
class JobParams:
    """The ranges jobs are drawn from; docs/TWIN.md, "GPU fleet"."""

    rate_per_card_hour: float = 0.06
    """Mean arrivals per card and hour over a weekday."""
    peak_hour_utc: float = 14.0
    quiet_ratio: float = 0.3
    """Arrival rate at the quietest hour, over the day's mean (the peak is 2 - quiet_ratio)."""
    weekend_ratio: float = 0.5
    gpu_counts: tuple[int, ...] = (1, 2, 4, 8)
    gpu_count_weights: tuple[float, ...] = (0.5, 0.25, 0.17, 0.08)
    duration_median_h: float = 2.5
    duration_sigma: float = 0.8
    """Lognormal spread of durations (a factor e^0.8 = 2.2 is one sigma)."""
    duration_range_h: tuple[float, float] = (0.5, 12.0)
    memory_share_range: tuple[float, float] = (0.15, 0.95)
    """GPU memory per card, as a share of the card's memory."""
    cores_per_gpu: tuple[int, int] = (2, 8)
    memory_gib_per_core: tuple[float, float] = (2.0, 8.0)
    busy_per_core: tuple[float, float] = (0.5, 1.0)
    """CPU utilisation of the job's cores (data loading, preprocessing)."""
    utilization_single: tuple[float, float] = (0.25, 1.0)
    """GPU utilisation of a single-card job (notebooks to training)."""
    utilization_multi: tuple[float, float] = (0.7, 1.0)
    receive_median_bps: float = 20e6
    """Per card: the data a job reads over the network (NFS, object storage)."""
    receive_range_bps: tuple[float, float] = (1e6, 250e6)
    transmit_ratio: tuple[float, float] = (0.05, 0.3)
    written_gb_per_gpu: tuple[float, float] = (1.0, 30.0)
    """Checkpoints and outputs written to the local disk over the job's life."""
    kept_ratio: tuple[float, float] = (0.05, 0.4)
    """Share of what it wrote that stays on the disk after the job ends."""
    max_wait_h: float = 4.0
    page_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Arrivals:
    """One page of arriving jobs, in arrival order (arrays by job)."""

    step: I64
    user: I64
    gpus: I64
    memory_share: F64
    cores_per_gpu: I64
    memory_gib_per_core: F64
    busy: F64
    utilization: I64
    """In 1/1024."""
    duration: I64
    """Steps."""
    receive_bps: I64
    transmit_bps: I64
    write_per_step: I64
    kept_permille: I64


@dataclass(eq=False)
class Running:
    job: str
    user: str
    server: int
    cards: I64
    card_memory: I64
    slots: int
    utilization: int
    cores: int
    cpu_load: int
    memory: int
    receive: int
    transmit: int
    write_per_step: int
    kept_permille: int
    start: int
    end: int


@dataclass(eq=False)
class _Waiting:
    job: str
    page: Arrivals
    i: int
    arrival: int


@dataclass(frozen=True, slots=True)
class JobBlock:
    """The fleet's job-driven state over a block of steps, (steps, cards) or (steps, servers)."""

    card_utilization: F64
    card_memory: I64
    cpu_load: F64
    """Busy cores of the jobs over the server's cores."""
    memory: I64
    """Host memory the jobs hold."""
    disk: I64
    receive_bps: I64
    transmit_bps: I64
    events: list[Event] = field(default_factory=list)


class JobScheduler:
    """Draws the jobs of `hardware`'s fleet from `seed` and places them; `block` advances it."""

    def __init__(
        self,
        hardware: GpuHardware,
        seed: int,
        start_ms: int,
        step_ms: int,
        params: JobParams | None = None,
    ) -> None:
        self.hw = hw = hardware
        self.params = p = params or JobParams()
        self.seed = seed
        self.start_ms = start_ms
        self.step_ms = step_ms
        step_s = step_ms / 1000.0
        self.page_steps = max(1, round(p.page_s / step_s))
        self._max_wait = round(p.max_wait_h * 3600.0 / step_s)
        self._pages: dict[int, Arrivals] = {}
        self._top_gpus = int(hw.server_gpus.max())
        n, n_cards = hw.n_servers, hw.n_cards
        self.card_memory = np.zeros(n_cards, dtype=np.int64)
        self.card_slots = np.zeros(n_cards, dtype=np.int64)
        self.card_util = np.zeros(n_cards, dtype=np.int64)
        self.cores = np.zeros(n, dtype=np.int64)
        self.cpu_load = np.zeros(n, dtype=np.int64)
        self.memory = np.zeros(n, dtype=np.int64)
        self.receive = np.zeros(n, dtype=np.int64)
        self.transmit = np.zeros(n, dtype=np.int64)
        self.disk = hw.disk_start_bytes.copy()
        self.disk_rate = np.zeros(n, dtype=np.int64)
        self.disk_step = -1
        """The step `disk` holds the value of (it grows by `disk_rate` a step since)."""
        self.running: list[tuple[int, int, Running]] = []
        """A heap by (end step, order placed)."""
        self.waiting: list[_Waiting] = []
        self._placed = 0
        # jobs may hold 75 % of what the system leaves (the rest: page cache, users' shells),
        # so a full server sits just under the memory-used warning (80 %); a server's share
        # per card of that and of its cores caps what one card's job asks
        self._jobs_memory = (hw.server_memory_bytes - hw.server_base_memory_bytes) * 75 // 100
        self._cores_per_card = hw.server_cores // hw.server_gpus
        self._memory_per_card = self._jobs_memory // hw.server_gpus
        self._clean_at = (hw.server_disk_bytes * DISK_CLEAN_RATIO).astype(np.int64)

    # --- the stream ----------------------------------------------------------------------

    def arrival_rate(self, page: int) -> float:
        """Expected arrivals in `page` (an hour): the fleet's cards x the hour's share."""
        p = self.params
        t_s = self.start_ms / 1000.0 + (page + 0.5) * p.page_s
        hour = (t_s / 3600.0) % 24.0
        cycle = 0.5 * (1.0 + np.cos(2.0 * np.pi * (hour - p.peak_hour_utc) / 24.0))
        shape = p.quiet_ratio + (2.0 - 2.0 * p.quiet_ratio) * float(cycle)
        weekday = (int(t_s // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        if weekday >= 5:
            shape *= p.weekend_ratio
        return p.rate_per_card_hour * self.hw.n_cards * shape * p.page_s / 3600.0

    def arrivals(self, page: int) -> Arrivals:
        found = self._pages.get(page)
        if found is not None:
            return found
        p = self.params
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_JOBS, page]))
        )
        k = int(rng.poisson(self.arrival_rate(page)))
        step = page * self.page_steps + np.sort(rng.integers(0, self.page_steps, k))
        weights = np.array(USER_WEIGHTS)
        user = rng.choice(len(USERS), size=k, p=weights / weights.sum())
        counts = np.array(p.gpu_counts)
        count_weights = np.array(p.gpu_count_weights)
        gpus = np.minimum(
            rng.choice(counts, size=k, p=count_weights / count_weights.sum()), self._top_gpus
        )
        step_s = self.step_ms / 1000.0
        hours = np.clip(
            p.duration_median_h * np.exp(p.duration_sigma * rng.standard_normal(k)),
            *p.duration_range_h,
        )
        duration = np.maximum(1, np.rint(hours * 3600.0 / step_s)).astype(np.int64)
        single = gpus == 1
        utilization = np.where(
            single,
            rng.uniform(*p.utilization_single, k),
            rng.uniform(*p.utilization_multi, k),
        )
        receive = np.clip(
            gpus * p.receive_median_bps * np.exp(rng.standard_normal(k)),
            *p.receive_range_bps,
        )
        written = gpus * rng.uniform(*p.written_gb_per_gpu, k) * 1e9
        found = Arrivals(
            step=step.astype(np.int64),
            user=user.astype(np.int64),
            gpus=gpus.astype(np.int64),
            memory_share=rng.uniform(*p.memory_share_range, k),
            cores_per_gpu=rng.integers(p.cores_per_gpu[0], p.cores_per_gpu[1] + 1, k),
            memory_gib_per_core=rng.uniform(*p.memory_gib_per_core, k),
            busy=rng.uniform(*p.busy_per_core, k),
            utilization=np.rint(utilization * UTIL_UNITS).astype(np.int64),
            duration=duration,
            receive_bps=np.rint(receive).astype(np.int64),
            transmit_bps=np.rint(receive * rng.uniform(*p.transmit_ratio, k)).astype(np.int64),
            write_per_step=(written // duration).astype(np.int64),
            kept_permille=rng.integers(
                round(1000 * p.kept_ratio[0]), round(1000 * p.kept_ratio[1]) + 1, k
            ),
        )
        self._pages[page] = found
        return found

    # --- a block -------------------------------------------------------------------------

    def block(self, k0: int, n_steps: int) -> JobBlock:
        """The state of steps k0 … k0 + n_steps - 1, and the jobs that started and ended."""
        hw = self.hw
        out = JobBlock(
            card_utilization=np.empty((n_steps, hw.n_cards)),
            card_memory=np.empty((n_steps, hw.n_cards), dtype=np.int64),
            cpu_load=np.empty((n_steps, hw.n_servers)),
            memory=np.empty((n_steps, hw.n_servers), dtype=np.int64),
            disk=np.empty((n_steps, hw.n_servers), dtype=np.int64),
            receive_bps=np.empty((n_steps, hw.n_servers), dtype=np.int64),
            transmit_bps=np.empty((n_steps, hw.n_servers), dtype=np.int64),
        )
        end = k0 + n_steps
        arriving = self._arrivals_between(k0, end)
        a = 0
        row = 0
        while True:
            next_arrival = arriving[a][0] if a < len(arriving) else end
            next_end = self.running[0][0] if self.running else end
            step = min(next_arrival, next_end)
            if step >= end:
                break
            self._fill(out, k0, row, step - k0)
            row = step - k0
            self._advance_disk(step)
            released = self._release_ending(step, out.events)
            self._clean_disks()
            self._serve_waiting(step, released, out.events)
            while a < len(arriving) and arriving[a][0] == step:
                _, job, page, i = arriving[a]
                if not self._place(job, page, i, step, step, out.events):
                    self.waiting.append(_Waiting(job, page, i, step))
                a += 1
        self._fill(out, k0, row, n_steps)
        self._forget_pages_before((k0 + n_steps) // self.page_steps - 1)
        return out

    def _arrivals_between(self, k0: int, end: int) -> list[tuple[int, str, Arrivals, int]]:
        found = []
        for page in range(k0 // self.page_steps, (end - 1) // self.page_steps + 1):
            arrivals = self.arrivals(page)
            for i in np.flatnonzero((arrivals.step >= k0) & (arrivals.step < end)).tolist():
                found.append((int(arrivals.step[i]), f"job-{page}-{i}", arrivals, i))
        return found

    def _forget_pages_before(self, page: int) -> None:
        for old in [p for p in self._pages if p < page]:
            del self._pages[old]

    def _fill(self, out: JobBlock, k0: int, row: int, stop: int) -> None:
        if stop <= row:
            return
        rows = slice(row, stop)
        out.card_utilization[rows] = np.minimum(self.card_util, UTIL_UNITS) / UTIL_UNITS
        out.card_memory[rows] = self.card_memory
        out.cpu_load[rows] = self.cpu_load / (UTIL_UNITS * self.hw.server_cores)
        out.memory[rows] = self.memory
        out.receive_bps[rows] = self.receive
        out.transmit_bps[rows] = self.transmit
        since = np.arange(k0 + row, k0 + stop, dtype=np.int64) - self.disk_step
        disk = out.disk[rows]
        np.multiply(since[:, None], self.disk_rate, out=disk)
        disk += self.disk
        np.minimum(disk, self.hw.server_disk_bytes, out=disk)

    def _advance_disk(self, step: int) -> None:
        self.disk += self.disk_rate * (step - self.disk_step)
        np.minimum(self.disk, self.hw.server_disk_bytes, out=self.disk)
        self.disk_step = step

    def _clean_disks(self) -> None:
        full = self.disk >= self._clean_at
        if full.any():
            self.disk[full] = np.minimum(self.disk[full], self.hw.disk_clean_to_bytes[full])

    # --- placing and releasing -----------------------------------------------------------

    def _place(
        self, job: str, page: Arrivals, i: int, arrival: int, step: int, events: list[Event]
    ) -> bool:
        """First fit: the first server with enough free cards, cores and memory."""
        hw = self.hw
        gpus = int(page.gpus[i])
        single = gpus == 1
        need_slots = 1 if single else SLOTS_PER_CARD
        card_memory = (page.memory_share[i] * hw.card_memory_bytes).astype(np.int64)
        card_memory -= card_memory % (1 << 20)  # whole MiB, as CUDA allocates
        ok = (self.card_slots + need_slots <= SLOTS_PER_CARD) & (
            self.card_memory + card_memory <= hw.card_memory_bytes
        )
        cores = np.minimum(int(page.cores_per_gpu[i]), self._cores_per_card) * gpus
        memory = np.minimum(
            (cores * page.memory_gib_per_core[i] * GIB).astype(np.int64),
            self._memory_per_card * gpus,
        )
        fits = (
            (np.add.reduceat(ok, hw.card_start) >= gpus)
            & (self.cores + cores <= hw.server_cores)
            & (self.memory + memory <= self._jobs_memory)
        )
        if not fits.any():
            return False
        s = int(np.argmax(fits))
        first = int(hw.card_start[s])
        cards = first + np.flatnonzero(ok[first : first + int(hw.server_gpus[s])])[:gpus]
        run = Running(
            job=job,
            user=USERS[int(page.user[i])],
            server=s,
            cards=cards,
            card_memory=card_memory[cards],
            slots=need_slots,
            utilization=int(page.utilization[i]),
            cores=int(cores[s]),
            cpu_load=round(float(cores[s]) * float(page.busy[i]) * UTIL_UNITS),
            memory=int(memory[s]),
            receive=int(page.receive_bps[i]),
            transmit=int(page.transmit_bps[i]),
            write_per_step=int(page.write_per_step[i]),
            kept_permille=int(page.kept_permille[i]),
            start=step,
            end=step + int(page.duration[i]),
        )
        self._apply(run, +1)
        heapq.heappush(self.running, (run.end, self._placed, run))
        self._placed += 1
        events.append(
            Event(
                ts=self._ts(step),
                kind=EventKind.JOB_STARTED,
                entity=hw.server_paths[s],
                attributes=self._describe(run)
                | {
                    "gpu_utilization_ratio": run.utilization / UTIL_UNITS,
                    "expected_duration_s": (run.end - run.start) * self.step_ms / 1000.0,
                    "waited_s": (step - arrival) * self.step_ms / 1000.0,
                },
                end_ts=self._ts(run.end),
            )
        )
        return True

    def _apply(self, run: Running, sign: int) -> None:
        s = run.server
        self.card_memory[run.cards] += sign * run.card_memory
        self.card_slots[run.cards] += sign * run.slots
        self.card_util[run.cards] += sign * run.utilization
        self.cores[s] += sign * run.cores
        self.cpu_load[s] += sign * run.cpu_load
        self.memory[s] += sign * run.memory
        self.receive[s] += sign * run.receive
        self.transmit[s] += sign * run.transmit
        self.disk_rate[s] += sign * run.write_per_step

    def _release_ending(self, step: int, events: list[Event]) -> bool:
        released = False
        while self.running and self.running[0][0] == step:
            _, _, run = heapq.heappop(self.running)
            self._apply(run, -1)
            written = run.write_per_step * (run.end - run.start)
            deleted = written - written * run.kept_permille // 1000
            self.disk[run.server] = max(0, int(self.disk[run.server]) - deleted)
            events.append(
                Event(
                    ts=self._ts(step),
                    kind=EventKind.JOB_ENDED,
                    entity=self.hw.server_paths[run.server],
                    attributes=self._describe(run)
                    | {"duration_s": (run.end - run.start) * self.step_ms / 1000.0},
                )
            )
            released = True
        return released

    def _serve_waiting(self, step: int, released: bool, events: list[Event]) -> None:
        """Give up jobs that waited too long; place the others (in order) once cards freed."""
        self.waiting = [w for w in self.waiting if step - w.arrival < self._max_wait]
        if not released:
            return
        still = []
        for w in self.waiting:
            if not self._place(w.job, w.page, w.i, w.arrival, step, events):
                still.append(w)
        self.waiting = still

    def _describe(self, run: Running) -> dict[str, Any]:
        hw = self.hw
        return {
            "job": run.job,
            "user": run.user,
            "gpus": (run.cards - hw.card_start[run.server]).tolist(),
            "gpu_model": hw.model(run.server).name,
            "gpu_memory_bytes": int(run.card_memory[0]),
            "cores": run.cores,
            "memory_bytes": run.memory,
        }

    def _ts(self, step: int) -> int:
        return self.start_ms + step * self.step_ms
