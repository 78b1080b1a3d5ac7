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
