"""The Twin: a simulated room you step through time, command, and break on purpose.

`run(n)` returns n steps at once as a `TwinFrame` (the fast path: the physics is vectorised over
servers and the output over steps). The same seed and the same calls give the same data bit for
bit, and the result does not depend on how steps are grouped: `run(1)` 720 times equals
`run(720)`.

>>> from rackwatch.model.records import Command
>>> twin = Twin("small", seed=7)
>>> frame = twin.run(12)
>>> frame.values.shape, len(twin.series_keys), frame.absent is None
((12, 72), 72, True)
>>> event = twin.apply(Command("c01/r01/s01/fan1", "fan.set_level", {"level": 3}))
>>> str(event.kind), float(twin.run(1).values[0, twin.column("c01/r01/s01/fan1", "fan_level")])
('command.applied', 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.errors import CommandRejected
from rackwatch.model import entity as entity_path
from rackwatch.model.catalogue import FAN_LEVELS, fan_level
from rackwatch.model.records import Command, CommandAction, Event, EventKind
from rackwatch.model.series import SeriesKey
from rackwatch.model.times import MAX_TS_MS
from rackwatch.twin.faults import (
    FAULTS,
    STREAM_FAULTS,
    ActiveFault,
    Conditions,
    Readings,
    ScheduledFault,
    Window,
    resolve_target,
)
from rackwatch.twin.fleet import BACKGROUND, GpuFleet
from rackwatch.twin.jobs import JobParams
from rackwatch.twin.layout import SeriesLayout
from rackwatch.twin.plant import Plant, PlantParams
from rackwatch.twin.scenarios import SCENARIOS
from rackwatch.twin.sensors import Sensors, page_steps_for
from rackwatch.twin.topology import (
    DEFAULT_PRESET,
    DESIGN_LEVEL,
    FANS_PER_SERVER,
    Topology,
    build_topology,
)
from rackwatch.twin.workload import Workload, WorkloadParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

DEFAULT_START_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: a fixed default start keeps datasets reproducible."""
_LEVEL_NAMES = {name: level for level, name in FAN_LEVELS.items()}


@dataclass(frozen=True, slots=True)
class TwinFrame:
    """A block of steps: `values[i, j]` is series `series_keys[j]` at `ts[i]`.

    `absent[i, j]` is True where the message was lost (telemetry loss); None when nothing was.
    NaN in `values` is a sensor that answered NULL. `events` are the faults that started, the
    commands applied and (in a GPU room) the jobs that started and ended during the block, in
    time order.
    """

    ts: I64
    values: F64
    absent: Bools | None
    events: list[Event]

    def __len__(self) -> int:
        return len(self.ts)


class Twin:
    """A deterministic simulated server room.

    `preset` is small (5 servers), medium (10), large (15) or very-large (20) per cluster, in
    racks of at most 10, or a GPU fleet, gpu-fleet (16) or gpu-fleet-large (64), whose jobs
    follow `jobs`; `clusters` copies it. `faults` are scheduled from the start.
    """

    def __init__(
        self,
        preset: str = DEFAULT_PRESET,
        *,
        clusters: int = 1,
        seed: int = 0,
        start_ms: int = DEFAULT_START_MS,
        step_s: float = 5.0,
        faults: Iterable[ScheduledFault] = (),
        fan_level: int = DESIGN_LEVEL,
        plant: PlantParams | None = None,
        workload: WorkloadParams | None = None,
        jobs: JobParams | None = None,
        name: str | None = None,
    ) -> None:
        if not step_s * 1000.0 >= 1.0:
            raise ValueError(f"step_s must be at least 0.001 s, got {step_s}")
        self.name = name or preset
        self.seed = seed
        self.start_ms = int(start_ms)
        self.step_ms = round(step_s * 1000.0)
        self.step_s = self.step_ms / 1000.0
        self.topology: Topology = build_topology(preset, clusters, seed)
        self.layout = SeriesLayout.of(self.topology)
        self.series_keys: list[SeriesKey] = list(self.layout.keys)
        self._plant = Plant(self.topology, self.step_s, plant)
        gpus = self.topology.gpus
        if workload is None and gpus is not None:
            workload = BACKGROUND  # a GPU server's CPU is busy with its jobs' cores
        self._workload = Workload(
            self.topology.n_servers, seed, self.start_ms, self.step_s, workload
        )
        self._page_steps = page_steps_for(self.layout.n_series)
        self._fleet = (
            None
            if gpus is None
            else GpuFleet(gpus, seed, self.start_ms, self.step_ms, self._page_steps, jobs)
        )
        self._sensors = Sensors(self.layout, seed, self._page_steps)
        self._levels = np.full(self.topology.n_fans, _parse_level(fan_level), dtype=np.int64)
        self._faults: list[ActiveFault] = []
        self._pending: list[Event] = []
        self._step = 0
        for fault in faults:
            start_step = math.ceil(fault.offset_s / self.step_s - 1e-9)
            self._schedule(fault.kind, fault.entity, fault.params, max(0, start_step))

    @classmethod
    def from_scenario(cls, name: str, **kwargs: Any) -> Twin:
        """A twin of the named scenario (its preset and its scheduled faults)."""
        scenario = SCENARIOS.get(name)
        if scenario is None:
            raise ValueError(f"unknown twin scenario {name!r}; choose one of {sorted(SCENARIOS)}")
        return cls(scenario.preset, faults=scenario.faults, name=name, **kwargs)

    # --- time ------------------------------------------------------------------------------

    @property
    def step_index(self) -> int:
        """Steps simulated so far."""
        return self._step

    @property
    def now_ms(self) -> int:
        """Timestamp of the next step `run` will produce."""
        return self._ts(self._step)

    def _ts(self, step: int) -> int:
        return self.start_ms + step * self.step_ms

    def column(self, entity: str, metric: str) -> int:
        """Column of a series in the frame's values; KeyError if the twin has no such series."""
        return self.layout.column[SeriesKey(entity, metric)]

    def run(self, n_steps: int = 1) -> TwinFrame:
        """Simulate the next `n_steps` steps; memory is about 9 bytes * steps * series."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        k0 = self._step
        ts = self.start_ms + (k0 + np.arange(n_steps, dtype=np.int64)) * self.step_ms
        values = np.empty((n_steps, self.layout.n_series))
        absent: Bools | None = None
        events = self._pending + [
            f.event for f in self._faults if k0 <= f.start_step < k0 + n_steps
        ]
        self._pending = []
        row = 0
        while row < n_steps:
            k = k0 + row
            size = min(n_steps - row, self._page_steps - k % self._page_steps)
            readings = self._simulate(k, values[row : row + size])
            if readings.absent is not None:
                if absent is None:
                    absent = np.zeros(values.shape, dtype=np.bool_)
                absent[row : row + size] = readings.absent
            row += size
        self._step = k0 + n_steps
        if self._fleet is not None:
            events += self._fleet.drain_events()
        events.sort(key=lambda e: e.ts)
        return TwinFrame(ts, values, absent, events)

    def _simulate(self, k0: int, out: F64) -> Readings:
        n_steps = out.shape[0]
        active = [
            (f, self._window(f, k0, n_steps))
            for f in self._faults
            if f.start_step < k0 + n_steps and (f.end_step is None or f.end_step > k0)
        ]
        cond = Conditions(n_steps, self.topology)
        for fault, window in active:
            if fault.spec.on_physics is not None:
                fault.spec.on_physics(cond, fault, window)
        utilization = self._workload.utilization(k0, n_steps)
        gpus = None if self._fleet is None else self._fleet.advance(k0, n_steps)
        if gpus is not None:
            utilization = gpus.cpu_utilization(utilization)
        floor = cond.peek("util_floor")
        if floor is not None:
            np.maximum(utilization, floor, out=utilization)
        truth = self._plant.block(
            utilization, self._levels, cond, None if gpus is None else gpus.server_w
        )
        if self._fleet is not None and gpus is not None:
            truth |= self._fleet.truth(gpus, truth["inlet_temperature_celsius"], k0)
        self._sensors.read(truth, k0, out)
        readings = Readings(out)
        for fault, window in active:
            if fault.spec.on_readings is not None:
                fault.spec.on_readings(readings, fault, window)
        return readings

    def _window(self, fault: ActiveFault, k0: int, n_steps: int) -> Window:
        first = max(fault.start_step, k0)
        last = k0 + n_steps if fault.end_step is None else min(fault.end_step, k0 + n_steps)
        since = first - fault.start_step
        elapsed = (since + np.arange(last - first, dtype=np.float64)) * self.step_s
        return Window(slice(first - k0, last - k0), since, elapsed)

    # --- faults ----------------------------------------------------------------------------

    def inject(
        self,
        kind: str,
        entity: str,
        params: Mapping[str, Any] | None = None,
        start_ms: int | None = None,
    ) -> Event:
        """Schedule a fault now (or at `start_ms`, not in the past) and return its label Event.

        The Event also comes out in the frame of the step where the fault starts.
        Raises CommandRejected for an unknown kind, entity or parameter.
        """
        if start_ms is None:
            start_step = self._step
        else:
            if not isinstance(start_ms, int) or not 0 <= start_ms <= MAX_TS_MS:
                raise CommandRejected(
                    f"start_ms must be a time in ms between 1970 and 9999, got {start_ms!r:.40}"
                )
            start_step = math.ceil((start_ms - self.start_ms) / self.step_ms)
            if start_step < self._step:
                raise CommandRejected(
                    f"start_ms={start_ms} is in the past; the twin is at {self.now_ms}"
                )
        return self._schedule(kind, entity, params, start_step).event

    def fault_events(self) -> list[Event]:
        """Labels of every fault scheduled so far, future ones included, in start order."""
        return sorted((f.event for f in self._faults), key=lambda e: e.ts)

    def _schedule(
        self,
        kind: str,
        entity: str,
        params: Mapping[str, Any] | None,
        start_step: int,
        cause: str | None = None,
    ) -> ActiveFault:
        spec = FAULTS.get(kind)
        if spec is None:
            raise CommandRejected(f"unknown fault kind {kind!r}; choose one of {sorted(FAULTS)}")
        try:
            entity_path.validate(entity)
        except ValueError as exc:
            raise CommandRejected(str(exc)) from None
        merged = spec.merge(params)
        seq = len(self._faults)
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, STREAM_FAULTS, seq]))
        )
        target = resolve_target(spec.target, entity, merged, self.topology, self.layout, rng)
        duration = spec.planned_duration_s(merged)
        end_step = (
            None
            if duration is None
            else start_step + max(1, math.ceil(duration / self.step_s - 1e-9))
        )
        attributes: dict[str, Any] = {"fault": kind, **merged, **target.attributes}
        if cause is not None:
            attributes["cause"] = cause
        event = Event(
            ts=self._ts(start_step),
            kind=EventKind.FAULT_INJECTED,
            entity=target.entity,
            severity=spec.severity,
            attributes=attributes,
            end_ts=None if end_step is None else self._ts(end_step),
        )
        fault = ActiveFault(
            seq,
            spec,
            target.entity,
            merged,
            start_step,
            end_step,
            event,
            servers=target.servers,
            fans=target.fans,
            racks=target.racks,
            columns=target.columns,
        )
        if spec.prepare is not None:
            spec.prepare(fault, rng, self.step_s)
        self._faults.append(fault)
        if spec.then is not None and end_step is not None:
            self._schedule(spec.then, target.entity, None, end_step, cause=kind)
        return fault

    # --- commands --------------------------------------------------------------------------

    def apply(self, command: Command) -> Event:
        """Obey a command from the next step on; return its `command.applied` Event.

        `fan.set_level` takes a fan or a server (both its fans) and `{"level": 0..3}` (or
        off/low/medium/high). A failed fan stays off whatever its level. A `reason` param is
        copied into the Event. `twin.inject_fault` (`{"kind", "params"?, "start_ms"?}`, the
        target is the fault's entity) schedules a fault and returns its `fault.injected` Event,
        which comes out in the frame where the fault starts. Raises CommandRejected.
        """
        handlers: dict[str, Callable[[Command], dict[str, Any]]] = {
            CommandAction.FAN_SET_LEVEL: self._set_level,
            CommandAction.FAN_SET_MODE: self._set_mode,
        }
        if command.action == CommandAction.TWIN_INJECT_FAULT:
            return self._inject_fault(command)
        handler = handlers.get(command.action)
        if handler is None:
            accepted = sorted(str(a) for a in [*handlers, CommandAction.TWIN_INJECT_FAULT])
            raise CommandRejected(f"the twin cannot do {command.action!r}; it accepts {accepted}")
        details = handler(command)
        reason = command.params.get("reason")
        if reason is not None:  # why the issuer sent it (the fan controller says), kept in the log
            details["reason"] = str(reason)
        event = Event(
            ts=self.now_ms,
            kind=EventKind.COMMAND_APPLIED,
            entity=command.target,
            attributes={"action": str(command.action), **details, "issued_by": command.issued_by},
        )
        self._pending.append(event)
        return event

    def _inject_fault(self, command: Command) -> Event:
        kind = command.params.get("kind")
        fault_params = command.params.get("params")
        start_ms = command.params.get("start_ms")
        if not isinstance(kind, str):
            raise CommandRejected(
                f'twin.inject_fault needs params {{"kind": one of {sorted(FAULTS)}}}, got {kind!r}'
            )
        if fault_params is not None and not isinstance(fault_params, Mapping):
            raise CommandRejected(
                f"twin.inject_fault: params must be an object of fault parameters, "
                f"got {fault_params!r}"
            )
        if start_ms is not None and (isinstance(start_ms, bool) or not isinstance(start_ms, int)):
            raise CommandRejected(
                f"twin.inject_fault: start_ms must be epoch milliseconds, got {start_ms!r}"
            )
        try:
            return self.inject(kind, command.target, fault_params, start_ms)
        except (TypeError, ValueError) as exc:  # a parameter of the wrong shape, e.g. a list
            raise CommandRejected(f"twin.inject_fault: bad fault parameters: {exc}") from None

    def fan_levels(self) -> dict[str, int]:
        """Commanded level of every fan."""
        return dict(zip(self.topology.fan_paths, self._levels.tolist(), strict=True))

    def _fans_of(self, target: str) -> I64:
        topo = self.topology
        if target in topo.fan_index:
            return np.array([topo.fan_index[target]], dtype=np.int64)
        if target in topo.server_index:
            first = FANS_PER_SERVER * topo.server_index[target]
            return np.arange(first, first + FANS_PER_SERVER, dtype=np.int64)
        raise CommandRejected(
            f"unknown fan target {target!r}: name a fan (e.g. {topo.fan_paths[0]!r}) "
            f"or a server (e.g. {topo.server_paths[0]!r})"
        )

    def _set_level(self, command: Command) -> dict[str, Any]:
        fans = self._fans_of(command.target)
        if "level" not in command.params:
            raise CommandRejected('fan.set_level needs params {"level": 0..3}')
        try:
            level = _parse_level(command.params["level"])
        except ValueError as exc:
            raise CommandRejected(str(exc)) from None
        self._levels[fans] = level
        return {"level": level}

    def _set_mode(self, command: Command) -> dict[str, Any]:
        self._fans_of(command.target)
        mode = command.params.get("mode")
        if mode != "manual":
            raise CommandRejected(
                f"twin fans have no firmware mode {mode!r}: they only obey fan.set_level "
                "('manual'); run the fan controller for automatic control"
            )
        return {"mode": mode}

    # --- description -----------------------------------------------------------------------

    def inventory(self) -> list[dict[str, Any]]:
        """Every entity (room, CRAC, clusters, racks, PDUs, servers, fans; in a GPU room also
        the cards, disks and NICs) and its attributes."""
        return self.topology.inventory()


_parse_level = fan_level
