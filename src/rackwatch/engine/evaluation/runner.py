"""One run: the twin, the fan controller and the intelligence together, as fast as they go.

The loop is `rackwatch run`'s pipeline without the bus or the clock: the twin's telemetry
goes through `TwinSource` to the fan controller's pure `step` (its commands go back to the
twin) and, a minute of steps at a time, to `IntelligenceCore.process`, the scoring that the
live consumer runs in its worker thread. Before the run, the residual model is learned from
`TRAIN_HOURS` (3) of the same room with no fault (`learned_model`), as the retrainer of
`rackwatch run` learns it from the store. What comes out is the run's labels (the twin's
`fault.injected` events), its detections (`incident.opened`, `prediction.fan_failure`), the
controller's fan failovers and the anomaly count.

The controller decides every `control_steps` twin steps (6, i.e. every 30 s) rather than on
every 5-s batch as in `rackwatch run`: the twin and the controller cost mostly per call (the
twin's 5-s step alone costs 9x a step of a 12-step block), and a 30-s decision period changes
little of what the detectors see (the CPU's heatsink lags 180 s, the controller's dwell is
30 s up and 300 s down). It delays a fan failover by 25 s at most, so the time to
remediation is measured to 30 s; `execute(spec, control_steps=1)` gives the live cadence at
about twice the cost.

Costs 0.6-0.8 s of CPU per simulated hour (plus the 3 h of history), whatever the room's
size (the per-call overhead and the intelligence's per-minute work dominate); an exception in
a run is returned as a `RunFailure` by `execute_safely`, so that one broken run does not lose
the others.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from rackwatch.engine.anomaly import ResidualModel
from rackwatch.engine.control import DEFAULT_POLICY, ControlState, FanLayout, FanPolicy, step
from rackwatch.engine.control.observe import TelemetryView
from rackwatch.engine.evaluation.detections import Detection, detections_from_events
from rackwatch.engine.evaluation.grid import RunSpec
from rackwatch.engine.evaluation.truth import Label, labels_from_events
from rackwatch.engine.intelligence import IntelligenceConfig, IntelligenceCore
from rackwatch.model.records import Batch, Event, EventKind
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

TRAIN_HOURS = 3.0
"""History the residual model is learned from before each run (the store's, in `run`)."""
TWIN_SOURCE = "twin"
CONTROL_STEPS = 6
"""Twin steps between two decisions of the fan controller (30 s)."""
INTELLIGENCE_STEPS = 12
"""Twin steps per batch given to the intelligence (one minute, as the stream would)."""
PREDICTIONS = frozenset({EventKind.PREDICTION_FAN_FAILURE, EventKind.PREDICTION_CLEARED})


@dataclass(frozen=True, slots=True)
class Failover:
    """The controller saw a stopped fan and sent its server's other fans high."""

    ts_ms: int
    fan: str
    server: str


@dataclass(frozen=True, slots=True)
class RunResult:
    spec: RunSpec
    n_servers: int
    start_ms: int
    end_ms: int
    labels: tuple[Label, ...]
    detections: tuple[Detection, ...]
    failovers: tuple[Failover, ...]
    anomaly_starts_ms: tuple[int, ...]
    """When each `anomaly.started` came (for the anomalies-per-day KPI)."""
    predictions: tuple[Event, ...]
    """Every `prediction.fan_failure` and `prediction.cleared` (time-to-failure scoring)."""
    event_counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0


def execute(
    spec: RunSpec,
    *,
    control_steps: int = CONTROL_STEPS,
    intelligence: IntelligenceConfig | None = None,
    fan_policy: FanPolicy = DEFAULT_POLICY,
    train_hours: float = TRAIN_HOURS,
) -> RunResult:
    """Run `spec` and collect what it says (see the module text)."""
    began, began_cpu = time.perf_counter(), time.process_time()
    twin = Twin(
        spec.preset, seed=spec.seed, start_ms=spec.start_ms, faults=spec.faults, name=spec.name
    )
    registry = SeriesRegistry()
    core = IntelligenceCore(registry, intelligence or IntelligenceConfig())
    if train_hours > 0:
        model = learned_model(spec, train_hours, control_steps, fan_policy)
        core.use_model(model, "evaluate", spec.start_ms)
    events: list[Event] = []

    def score(batch: Batch) -> None:
        events.extend(core.process(batch, source=TWIN_SOURCE))

    events += drive(twin, registry, spec.n_steps, score, control_steps, fan_policy)
    end_ms = twin.now_ms
    return RunResult(
        spec=spec,
        n_servers=twin.topology.n_servers,
        start_ms=twin.start_ms,
        end_ms=end_ms,
        labels=tuple(labels_from_events(twin.fault_events(), end_ms)),
        detections=tuple(detections_from_events(events)),
        failovers=tuple(
            Failover(e.ts, e.entity, str(e.attributes.get("server", "")))
            for e in events
            if e.kind == EventKind.CONTROL_FAN_FAILOVER
        ),
        anomaly_starts_ms=tuple(e.ts for e in events if e.kind == EventKind.ANOMALY_STARTED),
        predictions=tuple(e for e in events if e.kind in PREDICTIONS),
        event_counts=dict(Counter(str(e.kind) for e in events)),
        wall_s=time.perf_counter() - began,
        cpu_s=time.process_time() - began_cpu,
    )


def drive(
    twin: Twin,
    registry: SeriesRegistry,
    n_steps: int,
    on_batch: Callable[[Batch], None],
    control_steps: int = CONTROL_STEPS,
    fan_policy: FanPolicy = DEFAULT_POLICY,
) -> list[Event]:
    """Run `twin` for `n_steps` with the fan controller deciding every `control_steps`;
    `on_batch` gets the telemetry a minute at a time. Returns the controller's events."""
    source = TwinSource(twin, registry)
    layout = FanLayout.from_inventory(twin.inventory())
    view = TelemetryView(layout, registry)
    state = ControlState.initial(layout)
    events: list[Event] = []
    pending: list[Batch] = []
    done = 0
    while done < n_steps:
        batch, _ = source.read(min(control_steps, n_steps - done))
        done = twin.step_index
        view.update(batch)
        decision = step(state, view.observation(), fan_policy)
        state = decision.state
        for command in decision.commands:
            source.handle(command)
        events += decision.events
        pending.append(batch)
        if done % INTELLIGENCE_STEPS == 0 or done >= n_steps:
            on_batch(Batch.concat(pending))
            pending = []
    return events


def learned_model(
    spec: RunSpec,
    hours: float,
    control_steps: int = CONTROL_STEPS,
    fan_policy: FanPolicy = DEFAULT_POLICY,
) -> ResidualModel:
    """The residual model `rackwatch run`'s retrainer would have learned from the store: the
    same room (preset and seed) in the `hours` before the run, with no fault, fans driven by
    the controller."""
    start_ms = spec.start_ms - round(hours * 3_600_000)
    twin = Twin(spec.preset, seed=spec.seed, start_ms=start_ms, name=f"{spec.name}/history")
    registry = SeriesRegistry()
    history: list[Batch] = []
    drive(
        twin,
        registry,
        round(hours * 3600.0 / twin.step_s),
        history.append,
        control_steps,
        fan_policy,
    )
    return ResidualModel.fit(Batch.concat(history), registry)


@dataclass(frozen=True, slots=True)
class RunFailure:
    """A run that raised: its spec and the traceback, reported instead of its figures."""

    spec: RunSpec
    error: str
    """The exception's last line."""
    trace: str


def execute_safely(spec: RunSpec) -> RunResult | RunFailure:
    """`execute`, with an exception returned as a `RunFailure` (the pool's unit of work)."""
    try:
        return execute(spec)
    except Exception as exc:  # any bug in a stage: report it, keep the other runs
        return RunFailure(spec, f"{type(exc).__name__}: {exc}", traceback.format_exc())
