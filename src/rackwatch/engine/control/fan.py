"""The fan controller's pure core: `step(state, observation, policy) -> Decision`.

Each server holds its CPU at `target_c` with the lowest fan level that can, because fan power
grows as the cube of speed: slow the fans of cold servers, speed up only where needed.
Vectorised over servers (no Python loop over servers; only the few fans that change become
Commands). Oscillation is avoided three ways:

- a hysteresis band: raise one level when the CPU is above target; lower one level only if the
  temperature *predicted* one level down stays `lower_margin_c` below target. The prediction
  scales the CPU's rise above its inlet by how much less air the lower level moves
  (`relative_rise`), so a level that would overheat is never tried;
- a minimum dwell per level: `raise_dwell_s` before the next raise, `lower_dwell_s` before
  lowering again (the CPU settles in about three minutes);
- one level per decision, except the safety rules of `safety.py`, which go to high at once.

>>> from rackwatch.engine.control.layout import FanLayout
>>> layout = FanLayout(("c01/r01/s01",), ("c01/r01/s01/fan1", "c01/r01/s01/fan2"),
...                    np.array([0, 0]))
>>> def seen(now_s, cpu_c, levels=(1, 1), rpm=(4000.0, 4000.0), inlet_c=24.0):
...     now_ms = np.array([now_s * 1000])
...     return Observation(now_s * 1000, np.array([cpu_c]), now_ms, np.array([inlet_c]),
...                        np.array(rpm), np.array(levels, dtype=float), now_ms.repeat(2))

Too hot at low: one level up, commanded for the whole server, with its reason.

>>> d = step(ControlState.initial(layout), seen(0, 70.0))
>>> [(c.target, dict(c.params), c.issued_by) for c in d.commands]
[('c01/r01/s01', {'level': 2, 'reason': 'above_target'}, 'controller')]

Still hot 10 s later: the raise dwell (30 s) holds; after it, the next level.

>>> step(d.state, seen(10, 69.0, levels=(2, 2))).commands
[]
>>> d = step(d.state, seen(40, 68.0, levels=(2, 2)))
>>> [c.params["level"] for c in d.commands]
[3]

Cool at high (44 °C, 20 °C above inlet): medium would give 24 + 20 x 1.0 / 0.85 = 47.5 °C,
well under target, but only once the lower dwell (300 s) has passed.

>>> step(d.state, seen(100, 44.0, levels=(3, 3))).commands
[]
>>> d = step(d.state, seen(400, 44.0, levels=(3, 3)))
>>> [(c.params["level"], c.params["reason"]) for c in d.commands]
[(2, 'below_target')]

A fan stops (0 rpm at level 2): the other goes high at once, and an Event says so.

>>> d = step(d.state, seen(405, 50.0, levels=(2, 2), rpm=(0.0, 6000.0)))
>>> [(c.target, dict(c.params)) for c in d.commands]
[('c01/r01/s01/fan2', {'level': 3, 'reason': 'fan_failover'})]
>>> [(str(e.kind), e.entity) for e in d.events]
[('control.fan_failover', 'c01/r01/s01/fan1')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.commands import Reason, level_commands
from rackwatch.engine.control.safety import (
    MAX_LEVEL,
    SafetyLimits,
    failed_fans,
    lost_servers,
)
from rackwatch.engine.control.state import NEVER, ControlState, Observation
from rackwatch.model.records import Command, Event, EventKind, Severity

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class FanPolicy:
    """The auto mode's settings; the defaults hold 65 °C on the twin without oscillating."""

    target_c: float = 65.0
    """CPU temperature to hold."""
    raise_margin_c: float = 0.0
    """Raise one level once the CPU is above target + this."""
    lower_margin_c: float = 3.0
    """Lower one level only if the temperature predicted there is target - this or less."""
    raise_dwell_s: float = 30.0
    lower_dwell_s: float = 300.0
    relative_rise: tuple[float, ...] = (math.inf, 1.40, 1.0, 0.85)
    """CPU rise above inlet at each level (off, low, medium, high) relative to medium.

    From the fan affinity law (airflow ∝ speed) and heatsink convection (conductance ∝
    airflow^0.8) at 40/70/100 % speed: 1.34, 1, 0.85; rounded up where lowering, so the
    prediction errs warm. Off is infinite: auto never relies on convection alone.
    """
    resend_after_s: float = 20.0
    """A fan reporting another level this long after a command (or later) gets it again."""
    safety: SafetyLimits = field(default_factory=SafetyLimits)

    def __post_init__(self) -> None:
        if len(self.relative_rise) != MAX_LEVEL + 1:
            raise ValueError(f"relative_rise needs one value per level 0..{MAX_LEVEL}")
        if any(a < b for a, b in zip(self.relative_rise, self.relative_rise[1:], strict=False)):
            raise ValueError("relative_rise must not grow with the level (more air, less rise)")
        if min(self.raise_dwell_s, self.lower_dwell_s, self.lower_margin_c) < 0:
            raise ValueError("dwell times and margins must be >= 0")
        if not self.target_c < self.safety.critical_c:
            raise ValueError(
                f"target_c ({self.target_c}) must be below critical_c ({self.safety.critical_c})"
            )

    @property
    def lower_rise_ratio(self) -> F64:
        """By current level: the rise one level down over the rise now (inf at off)."""
        rise = np.array(self.relative_rise)
        ratio = np.full(len(rise), np.inf)
        ratio[1:] = rise[:-1] / rise[1:]
        return ratio


DEFAULT_POLICY = FanPolicy()


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state, the Commands to send and the Events to publish."""

    state: ControlState
    commands: list[Command]
    events: list[Event]


def step(state: ControlState, obs: Observation, policy: FanPolicy = DEFAULT_POLICY) -> Decision:
    """Decide every server's fan level from the latest observation; pure, costs O(servers)."""
    layout, limits, now = state.layout, policy.safety, obs.now_ms
    first = state.started_ms == NEVER
    started = now if first else state.started_ms
    reported = np.where(np.isnan(obs.fan_level), state.reported_level, obs.fan_level).astype(
        np.int64
    )
    level, changed_before = state.auto_level, state.changed_ms
    if first:  # take-over counts as a change raise_dwell_s ago: raise at once, lower after dwell
        level = _take_over(state, reported, policy.safety.min_auto_level)
        changed_before = np.full_like(changed_before, now - round(policy.raise_dwell_s * 1000))

    failed = failed_fans(obs.fan_level, obs.fan_rpm, state.failed, limits)
    since = started if state.joined_ms is None else np.maximum(started, state.joined_ms)
    lost = lost_servers(obs.cpu_ms, now, since, limits)
    n_failed = np.bincount(layout.fan_server, weights=failed, minlength=layout.n_servers)
    with np.errstate(invalid="ignore"):
        hot = obs.cpu_c >= limits.critical_c

    new, reason = _hysteresis(obs, level, changed_before, state.server_is_auto, policy)
    forced = np.zeros(layout.n_servers, dtype=np.bool_)
    for mask, why in (
        (hot, Reason.CRITICAL_TEMPERATURE),
        (n_failed > 0, Reason.FAN_FAILOVER),
        (lost, Reason.TELEMETRY_LOST),
    ):
        new = np.where(mask, MAX_LEVEL, new)
        reason = np.where(mask, why, reason)
        forced |= mask
    changed_ms = np.where((new != level) | forced, now, changed_before)

    fans, levels, fan_reasons = _fan_changes(
        state, obs.fan_level_ms, new, reason, failed, reported, policy
    )
    sent_level, sent_ms = state.sent_level.copy(), state.sent_ms.copy()
    sent_level[fans], sent_ms[fans] = levels, now
    new_state = replace(
        state,
        auto_level=new,
        changed_ms=changed_ms,
        failsafe=lost,
        failed=failed,
        sent_level=sent_level,
        sent_ms=sent_ms,
        reported_level=reported,
        started_ms=started,
    )
    commands = level_commands(layout, fans, levels, fan_reasons, ts=now)
    events = _fan_events(state, obs, failed) + _failsafe_events(state, obs, lost)
    return Decision(new_state, commands, events)


def _take_over(state: ControlState, reported: I64, min_level: int) -> I64:
    """On the first observation, start each server from the highest level its fans report
    (at least `min_level`: auto does not keep a room whose fans are all off)."""
    known = np.where(reported == NEVER, -1, reported)
    top = np.full(state.layout.n_servers, -1, dtype=np.int64)
    np.maximum.at(top, state.layout.fan_server, known)
    return np.where(top < 0, state.auto_level, np.clip(top, min_level, MAX_LEVEL))


def _hysteresis(
    obs: Observation, level: I64, changed_ms: I64, auto: Bools, policy: FanPolicy
) -> tuple[I64, I64]:
    """One level up above target, one down where the level below is predicted cool enough."""
    since_ms = np.where(changed_ms == NEVER, np.inf, obs.now_ms - changed_ms)
    cpu, inlet = obs.cpu_c, obs.inlet_c
    with np.errstate(invalid="ignore"):
        up = (
            auto
            & (cpu > policy.target_c + policy.raise_margin_c)
            & (since_ms >= policy.raise_dwell_s * 1000.0)
            & (level < MAX_LEVEL)
        )
        predicted = inlet + (cpu - inlet) * policy.lower_rise_ratio[level]
        down = (
            auto
            & ~up
            & (predicted <= policy.target_c - policy.lower_margin_c)
            & (since_ms >= policy.lower_dwell_s * 1000.0)
            & (level > policy.safety.min_auto_level)
        )
    new = level + up.astype(np.int64) - down.astype(np.int64)
    reason = np.where(up, Reason.ABOVE_TARGET, np.where(down, Reason.BELOW_TARGET, Reason.HOLD))
    return new, reason.astype(np.int64)


def _fan_changes(
    state: ControlState,
    fan_level_ms: I64,
    server_level: I64,
    server_reason: I64,
    failed: Bools,
    reported: I64,
    policy: FanPolicy,
) -> tuple[I64, I64, I64]:
    """Fans to command: auto, not failed, and not already at (or just sent to) their level."""
    fan_server = state.layout.fan_server
    desired = server_level[fan_server]
    # Trust the fan's report only if it was taken long enough after our last command to show
    # it: a command is resent when a later report disagrees, never while the fan is silent.
    sent = state.sent_ms != NEVER
    stale = fan_level_ms - state.sent_ms < policy.resend_after_s * 1000.0
    believed = np.where((sent & stale) | (reported == NEVER), state.sent_level, reported)
    need = ~state.manual & ~failed & (desired != believed)
    fans = np.flatnonzero(need).astype(np.int64)
    why = server_reason[fan_server[fans]]
    hold = why == Reason.HOLD
    resend = np.where(desired[fans] == state.sent_level[fans], Reason.RESEND, Reason.ALIGN)
    return fans, desired[fans], np.where(hold, resend, why).astype(np.int64)


def _fan_events(state: ControlState, obs: Observation, failed: Bools) -> list[Event]:
    layout, events = state.layout, []
    for f in np.flatnonzero(failed != state.failed).tolist():
        server = int(layout.fan_server[f])
        others = [
            layout.fan_paths[g] for g in np.flatnonzero(layout.fan_server == server) if g != f
        ]
        if failed[f]:
            kind, severity = EventKind.CONTROL_FAN_FAILOVER, Severity.CRITICAL
        else:
            kind, severity = EventKind.CONTROL_FAN_RECOVERED, Severity.INFO
        events.append(
            Event(
                ts=obs.now_ms,
                kind=kind,
                entity=layout.fan_paths[f],
                severity=severity,
                attributes={
                    "server": layout.server_paths[server],
                    "fan_rpm": float(obs.fan_rpm[f]),
                    "fan_level": float(obs.fan_level[f]),
                    "other_fans": others,
                    "other_fans_level": MAX_LEVEL if failed[f] else None,
                    "issued_by": "controller",
                },
            )
        )
    return events


def _failsafe_events(state: ControlState, obs: Observation, lost: Bools) -> list[Event]:
    layout, events = state.layout, []
    for s in np.flatnonzero(lost != state.failsafe).tolist():
        last = int(obs.cpu_ms[s])
        events.append(
            Event(
                ts=obs.now_ms,
                kind=EventKind.CONTROL_FAILSAFE if lost[s] else EventKind.CONTROL_FAILSAFE_CLEARED,
                entity=layout.server_paths[s],
                severity=Severity.WARNING if lost[s] else Severity.INFO,
                attributes={
                    "reason": Reason.TELEMETRY_LOST.label,
                    "last_sample_ms": None if last == NEVER else last,
                    "fan_level": MAX_LEVEL if lost[s] else None,
                    "issued_by": "controller",
                },
            )
        )
    return events
