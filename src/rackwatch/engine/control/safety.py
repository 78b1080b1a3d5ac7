"""Limits and fail-safe: the rules that win over temperature control.

Each rule forces a server's fans to high, at once and whatever the dwell time:

- a fan has failed (its tachometer reads at most `stall_rpm` while its level is above off):
  the server's other fans go high to make up for its airflow;
- the server's telemetry is lost (no valid CPU temperature for `telemetry_timeout_s` of
  simulated time): the controller is blind, so it assumes the worst;
- its CPU reaches `critical_c`;
- the controller itself fails (`fail_safe`, called by the shell when the step raises);
- the source sends nothing at all for the wall-clock silence timeout (`silence_fail_safe`,
  called by the shell's watchdog: the telemetry's clock has stopped, so the step cannot see it).

A fan in manual mode is never touched: the operator who took it owns it.

>>> limits = SafetyLimits()
>>> failed_fans(np.array([2.0, 2.0, 0.0, np.nan]), np.array([0.0, 5000.0, 0.0, 0.0]),
...             np.array([False, False, False, True]), limits).tolist()
[True, False, False, True]
>>> lost_servers(np.array([100_000, 60_000, NEVER]), 100_000, 50_000, limits).tolist()
[False, True, True]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.commands import Reason, level_commands
from rackwatch.engine.control.state import NEVER, ControlState
from rackwatch.model.catalogue import FAN_LEVELS
from rackwatch.model.records import Command

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
MAX_LEVEL = max(FAN_LEVELS)
"""High: the fail-safe level."""


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    critical_c: float = 85.0
    """CPU temperature at which the fans go high at once, dwell or not."""
    telemetry_timeout_s: float = 30.0
    """Simulated seconds without a valid CPU temperature before a server is deemed lost."""
    stall_rpm: float = 100.0
    """A fan at or below this speed while its level is above off has failed."""
    min_auto_level: int = 1
    """Auto never goes below this (1, low): with every fan off only convection is left."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_auto_level <= MAX_LEVEL:
            raise ValueError(f"min_auto_level must be 0..{MAX_LEVEL}, got {self.min_auto_level}")
        if self.telemetry_timeout_s <= 0:
            raise ValueError("telemetry_timeout_s must be positive")


def failed_fans(level: F64, rpm: F64, previous: Bools, limits: SafetyLimits) -> Bools:
    """Fans turning at most `stall_rpm` while commanded above off; unknown keeps `previous`."""
    known = ~np.isnan(level) & ~np.isnan(rpm)
    with np.errstate(invalid="ignore"):
        detected = (level > 0) & (rpm <= limits.stall_rpm)
    return np.where(known, detected, previous)


def lost_servers(cpu_ms: I64, now_ms: int, started_ms: int | I64, limits: SafetyLimits) -> Bools:
    """Servers with no valid CPU temperature for longer than the timeout (never counts from
    `started_ms`: the controller's first instant, or per server when it joined)."""
    last = np.where(cpu_ms == NEVER, started_ms, cpu_ms)
    return np.asarray(now_ms - last > limits.telemetry_timeout_s * 1000.0)


def fail_safe(state: ControlState, now_ms: int) -> tuple[ControlState, list[Command]]:
    """Every fan not in manual mode to high, for when the controller itself has failed.

    Deliberately simple (no observation, no hysteresis): it must work when the step did not.
    The servers' auto level becomes high too, so control resumes from high, one level at a time.
    Fans already sent to high are not commanded again.
    """
    return _all_high(state, now_ms, ~state.manual, Reason.CONTROLLER_ERROR)


def silence_fail_safe(state: ControlState, now_ms: int) -> tuple[ControlState, list[Command]]:
    """Every fan in auto that has not failed to high, every server in fail-safe: the source
    has gone silent, so the controller is blind everywhere (`telemetry_lost`, as when one
    server's telemetry is lost). A failed fan is not commanded (as in `step`).

    >>> from rackwatch.engine.control.layout import FanLayout
    >>> layout = FanLayout(("s1",), ("s1/fan1", "s1/fan2"), np.array([0, 0]))
    >>> state, commands = silence_fail_safe(ControlState.initial(layout), 9000)
    >>> [(c.target, dict(c.params)) for c in commands], state.failsafe.tolist()
    ([('s1', {'level': 3, 'reason': 'telemetry_lost'})], [True])
    >>> silence_fail_safe(state, 9500)[1]  # already sent high: nothing again
    []
    """
    new, commands = _all_high(state, now_ms, ~state.manual & ~state.failed, Reason.TELEMETRY_LOST)
    return replace(new, failsafe=np.ones(state.layout.n_servers, dtype=np.bool_)), commands


def _all_high(
    state: ControlState, now_ms: int, eligible: Bools, reason: Reason
) -> tuple[ControlState, list[Command]]:
    layout = state.layout
    fans = np.flatnonzero(eligible & (state.sent_level != MAX_LEVEL)).astype(np.int64)
    levels = np.full(len(fans), MAX_LEVEL, dtype=np.int64)
    reasons = np.full(len(fans), reason, dtype=np.int64)
    commands = level_commands(layout, fans, levels, reasons, ts=now_ms)
    sent_level, sent_ms = state.sent_level.copy(), state.sent_ms.copy()
    sent_level[fans], sent_ms[fans] = MAX_LEVEL, now_ms
    new = replace(
        state,
        auto_level=np.full(layout.n_servers, MAX_LEVEL, dtype=np.int64),
        changed_ms=np.full(layout.n_servers, now_ms, dtype=np.int64),
        sent_level=sent_level,
        sent_ms=sent_ms,
    )
    return new, commands
