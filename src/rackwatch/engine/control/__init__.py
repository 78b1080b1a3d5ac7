"""Closed-loop fan control: a pure, vectorised core and a thin async shell.

layout.py     which fans the controller drives and which server each cools (from an inventory)
state.py      Observation (what it sees) and ControlState (what it remembers): arrays
fan.py        FanPolicy and the pure `step(state, observation, policy) -> Decision`
safety.py     limits that win over temperature control: failover, lost telemetry, fail-safe
modes.py      auto / manual per fan, level parsing
commands.py   level changes -> fan.set_level Commands with issued_by and reason
observe.py    telemetry Batches -> Observation (vectorised by series id)
controller.py FanController: the bus consumer (telemetry in, Commands and Events out)
compare.py    compare_policies: fan energy of auto vs always-high, measured on the twin
"""

from rackwatch.engine.control.commands import Reason
from rackwatch.engine.control.controller import CONTROL, FanController, FanStatus
from rackwatch.engine.control.fan import DEFAULT_POLICY, Decision, FanPolicy, step
from rackwatch.engine.control.layout import FanLayout
from rackwatch.engine.control.modes import FanMode
from rackwatch.engine.control.safety import SafetyLimits, fail_safe
from rackwatch.engine.control.state import ControlState, Observation

__all__ = [
    "CONTROL",
    "DEFAULT_POLICY",
    "ControlState",
    "Decision",
    "FanController",
    "FanLayout",
    "FanMode",
    "FanPolicy",
    "FanStatus",
    "Observation",
    "Reason",
    "SafetyLimits",
    "fail_safe",
    "step",
]
