"""A controller whose layout grows (MQTT devices that announce themselves after the start):
the existing servers and fans keep their index and their state, the new ones start fresh."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rackwatch.engine.control import ControlState, FanLayout
from rackwatch.engine.control.observe import TelemetryView
from rackwatch.engine.control.state import NEVER
from rackwatch.model import Batch, SeriesRegistry


def server(path: str, fans: int = 2) -> list[dict[str, str]]:
    return [{"entity": path, "kind": "server"}] + [
        {"entity": f"{path}/fan{k}", "kind": "fan", "server": path} for k in range(1, fans + 1)
    ]


def test_a_layout_extends_keeping_its_indices() -> None:
    first = FanLayout.from_inventory(server("c01/r01/s01"))
    grown = first.extended(
        [*server("c01/r01/s01"), *server("c01/r01/s02"), {"entity": "x/fan9", "kind": "fan"}]
    )
    assert grown.server_paths == ("c01/r01/s01", "c01/r01/s02")
    assert grown.fan_paths[:2] == first.fan_paths
    assert grown.fan_server.tolist() == [0, 0, 1, 1]  # the fan of no known server is left out
    same = first.extended(server("c01/r01/s01"))
    assert (same.server_paths, same.fan_paths) == (first.server_paths, first.fan_paths)


def test_state_and_view_grow_keeping_what_they_knew() -> None:
    registry = SeriesRegistry()
    first = FanLayout.from_inventory(server("c01/r01/s01"))
    state = ControlState.initial(first)
    state = replace(state, auto_level=np.array([3]), manual=np.array([True, False]))
    view = TelemetryView(first, registry)
    cpu = registry.intern("c01/r01/s01", "cpu_temperature_celsius")
    view.update(Batch.of([1_000], [cpu], [71.0]))
    grown = first.extended(server("c01/r01/s02"))
    bigger = state.grown(grown)
    assert bigger.auto_level.tolist() == [3, 2]
    assert bigger.manual.tolist() == [True, False, False, False]
    assert bigger.sent_ms.tolist() == [NEVER] * 4
    view.grow(grown)
    cpu2 = registry.intern("c01/r01/s02", "cpu_temperature_celsius")
    view.update(Batch.of([2_000], [cpu2], [55.0]))
    seen = view.observation()
    assert seen.cpu_c.tolist() == [71.0, 55.0] and seen.cpu_ms.tolist() == [1_000, 2_000]
    with pytest.raises(ValueError, match="keeps the servers"):
        bigger.grown(FanLayout.from_inventory(server("c01/r01/s09")))


def test_a_server_that_joins_late_is_not_lost_before_the_timeout() -> None:
    """Its telemetry counts as missing from when it joined, not from the controller's start."""
    from control_support import observe

    from rackwatch.engine.control import DEFAULT_POLICY, step

    first = FanLayout.from_inventory(server("c01/r01/s01"))
    state = step(ControlState.initial(first), observe(0, [50.0], [2, 2])).state
    joined_s = 3_600.0
    grown = state.grown(first.extended(server("c01/r01/s02")), round(joined_s * 1000))
    timeout_s = DEFAULT_POLICY.safety.telemetry_timeout_s
    cpu_s = [joined_s, -0.001]  # s02 has never reported a CPU temperature

    soon = step(grown, observe(joined_s + 1, [50.0, 0.0], [2, 2, 2, 2], cpu_s=cpu_s))
    assert soon.state.failsafe.tolist() == [False, False]
    later_s = joined_s + timeout_s + 1
    late = step(grown, observe(later_s, [50.0, 0.0], [2, 2, 2, 2], cpu_s=[later_s, -0.001]))
    assert late.state.failsafe.tolist() == [False, True]
