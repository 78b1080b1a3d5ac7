"""What the fan controller sees (`Observation`) and what it remembers (`ControlState`).

Both hold NumPy arrays indexed by server or fan number (see `FanLayout`), so one step decides
for every server at once. The step never mutates them: it returns a new state, which keeps the
core pure and lets a test replay any sequence of observations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.layout import FanLayout

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
NEVER = -1
"""Timestamp of a thing that never happened (no sample yet, no command sent)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """The latest valid reading of what the controller uses, at simulated instant `now_ms`.

    `now_ms` is the newest sample timestamp the controller has seen: the controller's clock is
    the telemetry's, so dwell times and the telemetry timeout hold at any speed of the twin.
    A value never read is NaN (its timestamp NEVER). NULL readings do not count as samples.
    """

    now_ms: int
    cpu_c: F64
    """CPU temperature per server."""
    cpu_ms: I64
    """Timestamp of that reading per server."""
    inlet_c: F64
    """Inlet air temperature per server (for the predicted temperature one level down)."""
    fan_rpm: F64
    """Tachometer per fan."""
    fan_level: F64
    """Level the fan reports it was commanded to (0 off .. 3 high)."""
    fan_level_ms: I64
    """Timestamp of that report per fan (a command is resent only if a later one disagrees)."""

    @classmethod
    def blank(cls, layout: FanLayout, now_ms: int = NEVER) -> Observation:
        """Nothing read yet."""
        n, f = layout.n_servers, layout.n_fans
        return cls(
            now_ms,
            np.full(n, np.nan),
            np.full(n, NEVER, dtype=np.int64),
            np.full(n, np.nan),
            np.full(f, np.nan),
            np.full(f, np.nan),
            np.full(f, NEVER, dtype=np.int64),
        )


@dataclass(frozen=True, slots=True)
class ControlState:
    """The controller's memory between steps.

    Per server: the auto level it chose and when that last changed (dwell), whether it is in
    fail-safe for lost telemetry. Per fan: manual mode, detected failure, the last level this
    controller sent and when (to resend a command that was lost).
    """

    layout: FanLayout
    auto_level: I64
    changed_ms: I64
    failsafe: Bools
    manual: Bools
    failed: Bools
    sent_level: I64
    sent_ms: I64
    reported_level: I64
    """Last level each fan reported (NEVER if none): where a fan handed back to auto starts."""
    started_ms: int = NEVER
    """First instant observed: a server silent since then is lost after the timeout too."""
    joined_ms: I64 | None = None
    """Per server, when it joined a grown layout (`grown`; NEVER: there from the start): a
    server silent since it joined is lost only after the timeout. None: all from the start."""

    @classmethod
    def initial(cls, layout: FanLayout, level: int = 2) -> ControlState:
        """Every fan in auto, nothing failed, `level` assumed until telemetry says otherwise."""
        n, f = layout.n_servers, layout.n_fans
        return cls(
            layout=layout,
            auto_level=np.full(n, level, dtype=np.int64),
            changed_ms=np.full(n, NEVER, dtype=np.int64),
            failsafe=np.zeros(n, dtype=np.bool_),
            manual=np.zeros(f, dtype=np.bool_),
            failed=np.zeros(f, dtype=np.bool_),
            sent_level=np.full(f, NEVER, dtype=np.int64),
            sent_ms=np.full(f, NEVER, dtype=np.int64),
            reported_level=np.full(f, NEVER, dtype=np.int64),
        )

    def grown(self, layout: FanLayout, now_ms: int = NEVER, level: int = 2) -> ControlState:
        """This state over `layout`, which extends this one's (`FanLayout.extended`): the new
        servers and fans start as `initial` starts them, the servers having joined at
        `now_ms` (their telemetry is not missed before the timeout has passed since)."""
        old = self.layout
        if (
            layout.server_paths[: old.n_servers] != old.server_paths
            or layout.fan_paths[: old.n_fans] != old.fan_paths
        ):
            raise ValueError("a grown layout keeps the servers and fans it had, in order")
        new = ControlState.initial(layout, level)
        n, f = old.n_servers, old.n_fans

        def keep(fresh: npt.NDArray[Any], current: npt.NDArray[Any], count: int) -> Any:
            fresh[:count] = current
            return fresh

        return replace(
            self,
            layout=layout,
            auto_level=keep(new.auto_level, self.auto_level, n),
            changed_ms=keep(new.changed_ms, self.changed_ms, n),
            failsafe=keep(new.failsafe, self.failsafe, n),
            manual=keep(new.manual, self.manual, f),
            failed=keep(new.failed, self.failed, f),
            sent_level=keep(new.sent_level, self.sent_level, f),
            sent_ms=keep(new.sent_ms, self.sent_ms, f),
            reported_level=keep(new.reported_level, self.reported_level, f),
            joined_ms=keep(
                np.full(layout.n_servers, now_ms, dtype=np.int64),
                np.full(n, NEVER, dtype=np.int64) if self.joined_ms is None else self.joined_ms,
                n,
            ),
        )

    @property
    def server_is_auto(self) -> Bools:
        """Servers with at least one fan in auto mode."""
        n_manual = np.bincount(
            self.layout.fan_server, weights=self.manual, minlength=self.layout.n_servers
        )
        return np.asarray(n_manual < self.layout.fans_per_server)

    @property
    def server_has_failed_fan(self) -> Bools:
        n_failed = np.bincount(
            self.layout.fan_server, weights=self.failed, minlength=self.layout.n_servers
        )
        return np.asarray(n_failed > 0)
