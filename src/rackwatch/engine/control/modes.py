"""Auto and manual mode, per fan: what the control API changes.

In manual mode the controller leaves the fan alone (no command, not even fail-safe): the
operator owns it. Setting a level by hand puts the fan in manual mode. Handing a fan back to
auto starts its server from the highest level its fans report, so control resumes one level at
a time instead of jumping.

>>> parse_mode("AUTO"), parse_level("high"), parse_level(1)
(<FanMode.AUTO: 'auto'>, 3, 1)
>>> parse_level(True)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rackwatch.errors.CommandRejected: fan level must be 0..3 or one of [...], got True
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

import numpy as np

from rackwatch.engine.control.safety import MAX_LEVEL
from rackwatch.engine.control.state import NEVER, ControlState
from rackwatch.errors import CommandRejected
from rackwatch.model.catalogue import fan_level
from rackwatch.model.records import Command, CommandAction, Event, EventKind


class FanMode(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


def parse_mode(value: Any) -> FanMode:
    """A mode from "auto" or "manual" (any case); CommandRejected otherwise."""
    if isinstance(value, str) and value.lower() in FanMode.__members__.values():
        return FanMode(value.lower())
    raise CommandRejected(f"fan mode must be one of {[m.value for m in FanMode]}, got {value!r}")


def parse_level(value: Any) -> int:
    """A level from 0..3 or off/low/medium/high (any case); CommandRejected otherwise (booleans
    too): `catalogue.fan_level`'s rule."""
    try:
        return fan_level(value)
    except ValueError as exc:
        raise CommandRejected(str(exc)) from None


def with_mode(
    state: ControlState, entity: str, mode: FanMode, now_ms: int, *, min_level: int = 1
) -> ControlState:
    """Every fan at or below `entity` (fan, server, rack, cluster) in `mode`.

    A server handed back to auto starts at the highest level its fans report (at least
    `min_level`), and its dwell restarts now.
    """
    layout = state.layout
    fans = layout.fans_under(entity)
    manual = state.manual.copy()
    manual[fans] = mode is FanMode.MANUAL
    auto_level, changed_ms = state.auto_level, state.changed_ms
    resumed = fans[state.manual[fans] & ~manual[fans]]
    if len(resumed):
        servers = np.unique(layout.fan_server[resumed])
        top = np.full(layout.n_servers, NEVER, dtype=np.int64)
        np.maximum.at(top, layout.fan_server, state.reported_level)
        start = np.clip(top[servers], min_level, MAX_LEVEL)
        auto_level, changed_ms = auto_level.copy(), changed_ms.copy()
        auto_level[servers] = np.where(top[servers] == NEVER, auto_level[servers], start)
        changed_ms[servers] = now_ms
    return replace(state, manual=manual, auto_level=auto_level, changed_ms=changed_ms)


def manual_command(state: ControlState, target: str, level: int, by: str, now_ms: int) -> Command:
    """The command setting a fan or a server by hand; CommandRejected for another target."""
    state.layout.fans_of(target)
    return Command(
        target,
        CommandAction.FAN_SET_LEVEL,
        {"level": level, "reason": FanMode.MANUAL.value},
        issued_by=by,
        ts=now_ms,
    )


def with_manual_level(state: ControlState, target: str) -> ControlState:
    """The fans of `target` (a fan or a server) switched to manual mode."""
    manual = state.manual.copy()
    manual[state.layout.fans_of(target)] = True
    return replace(state, manual=manual)


def mode_event(entity: str, mode: FanMode, n_fans: int, by: str, now_ms: int) -> Event:
    return Event(
        ts=now_ms,
        kind=EventKind.CONTROL_MODE_CHANGED,
        entity=entity,
        attributes={"mode": mode.value, "n_fans": n_fans, "issued_by": by},
    )
