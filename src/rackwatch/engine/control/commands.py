"""Turning level changes into `fan.set_level` Commands, each with who issued it and why.

Only the fans that change become commands, and a server whose fans all change to the same level
for the same reason gets one command naming the server (the source sets both fans), so a
decision costs a few records, not one per fan of the room.

>>> from rackwatch.engine.control.layout import FanLayout
>>> layout = FanLayout(("c01/r01/s01",), ("c01/r01/s01/fan1", "c01/r01/s01/fan2"),
...                    np.array([0, 0]))
>>> [(c.target, dict(c.params)) for c in level_commands(
...     layout, np.array([0, 1]), np.array([3, 3]), np.array([1, 1]), ts=5000)]
[('c01/r01/s01', {'level': 3, 'reason': 'above_target'})]
>>> [(c.target, c.params["level"]) for c in level_commands(
...     layout, np.array([1]), np.array([3]), np.array([3]), ts=5000)]
[('c01/r01/s01/fan2', 3)]
"""

from __future__ import annotations

import enum
from itertools import groupby

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.layout import FanLayout
from rackwatch.model.records import Command, CommandAction

I64 = npt.NDArray[np.int64]
ISSUED_BY = "controller"


class Reason(enum.IntEnum):
    """Why the controller commanded a level; the name travels in the command's params."""

    HOLD = 0
    ABOVE_TARGET = 1
    BELOW_TARGET = 2
    FAN_FAILOVER = 3
    TELEMETRY_LOST = 4
    CRITICAL_TEMPERATURE = 5
    CONTROLLER_ERROR = 6
    RESEND = 7
    """The source still reports another level some time after the command: sent again."""
    ALIGN = 8
    """A fan under auto is not at its server's level (at take-over, or back from manual)."""

    @property
    def label(self) -> str:
        return self.name.lower()


def level_commands(
    layout: FanLayout,
    fans: I64,
    levels: I64,
    reasons: I64,
    *,
    ts: int,
    issued_by: str = ISSUED_BY,
) -> list[Command]:
    """Commands setting `fans[i]` to `levels[i]` because of `reasons[i]` (a Reason value)."""
    fan_list = fans.tolist()
    wanted = {f: (int(lv), int(r)) for f, lv, r in zip(fan_list, levels, reasons, strict=True)}
    servers = layout.fan_server[fans].tolist()
    commands: list[Command] = []
    for server, group in groupby(sorted(zip(servers, fan_list, strict=True)), key=lambda p: p[0]):
        members = [f for _s, f in group]
        distinct = {wanted[f] for f in members}
        if len(distinct) == 1 and len(members) == int(layout.fans_per_server[server]):
            level, reason = distinct.pop()
            targets = [(layout.server_paths[server], level, reason)]
        else:
            targets = [(layout.fan_paths[f], *wanted[f]) for f in members]
        commands += [
            Command(
                target,
                CommandAction.FAN_SET_LEVEL,
                {"level": level, "reason": Reason(reason).label},
                issued_by=issued_by,
                ts=ts,
            )
            for target, level, reason in targets
        ]
    return commands
