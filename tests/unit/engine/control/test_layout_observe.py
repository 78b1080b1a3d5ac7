"""The layout from an inventory, and telemetry Batches folded into an Observation."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.control import FanLayout
from rackwatch.engine.control.observe import TelemetryView
from rackwatch.errors import CommandRejected
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.twin import Twin


def test_layout_from_the_twin_inventory_matches_its_topology() -> None:
    twin = Twin("small")
    layout = FanLayout.from_inventory(twin.inventory())
    assert layout.server_paths == twin.topology.server_paths
    assert layout.fan_paths == twin.topology.fan_paths
    assert layout.fan_server.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert layout.fans_per_server.tolist() == [2] * 5


@pytest.mark.parametrize("target", ["c01/r01", "c01/r01/s09", "c01/r01/s01/fan3", ""])
def test_fans_of_names_a_fan_or_a_server_only(target: str) -> None:
    layout = FanLayout.from_inventory(Twin("small").inventory())
    with pytest.raises(CommandRejected, match="unknown fan target"):
        layout.fans_of(target)


def test_fans_under_takes_any_ancestor_and_refuses_a_bare_prefix() -> None:
    layout = FanLayout.from_inventory(Twin("small").inventory())
    assert len(layout.fans_under("c01")) == 10
    assert layout.fans_under("c01/r01/s02").tolist() == [2, 3]
    with pytest.raises(CommandRejected, match="no fan at or below"):
        layout.fans_under("c01/r01/s0")


def test_a_fan_of_an_unknown_server_is_refused() -> None:
    with pytest.raises(ValueError, match="names no known server"):
        FanLayout.from_inventory([{"entity": "x/fan1", "kind": "fan", "server": "x"}])


def test_view_keeps_the_newest_valid_sample_whatever_the_row_order() -> None:
    layout = FanLayout(("s1", "s2"), ("s1/fan1", "s2/fan1"), np.array([0, 1]))
    registry = SeriesRegistry()
    other = registry.intern("s1", "power_watts")
    cpu1 = registry.intern("s1", "cpu_temperature_celsius")
    rpm2 = registry.intern("s2/fan1", "fan_rpm")
    level2 = registry.intern("s2/fan1", "fan_level")
    view = TelemetryView(layout, registry)
    view.update(
        Batch.of(
            [10_000, 5_000, 10_000, 10_000, 10_000],
            [cpu1, cpu1, other, rpm2, level2],
            [61.0, 55.0, 300.0, 0.0, 2.0],
        )
    )
    view.update(Batch.of([7_000, 15_000], [cpu1, cpu1], [99.0, np.nan]))  # older; NULL
    obs = view.observation()
    assert obs.now_ms == 15_000
    assert obs.cpu_c.tolist()[0] == 61.0 and obs.cpu_ms.tolist() == [10_000, -1]
    assert np.isnan(obs.cpu_c[1]) and np.isnan(obs.inlet_c).all()
    assert obs.fan_rpm.tolist()[1] == 0.0 and obs.fan_level.tolist()[1] == 2.0


def test_view_learns_series_interned_after_it_was_built() -> None:
    layout = FanLayout(("s1",), ("s1/fan1",), np.array([0]))
    registry = SeriesRegistry()
    view = TelemetryView(layout, registry)
    inlet = registry.intern("s1", "inlet_temperature_celsius")
    view.update(Batch.of([5_000], [inlet], [22.5]))
    assert view.observation().inlet_c.tolist() == [22.5]


def test_view_reads_a_twin_batch() -> None:
    twin = Twin("small", seed=1)
    registry = SeriesRegistry()
    ids = registry.intern_many(twin.series_keys)
    layout = FanLayout.from_inventory(twin.inventory())
    view = TelemetryView(layout, registry)
    frame = twin.run(3)
    view.update(Batch.from_grid(frame.ts, ids, frame.values))
    obs = view.observation()
    cpu = twin.layout.blocks["cpu_temperature_celsius"]
    assert obs.now_ms == int(frame.ts[-1])
    np.testing.assert_array_equal(obs.cpu_c, frame.values[-1, cpu])
    assert obs.fan_level.tolist() == [2.0] * 10


def test_a_series_the_controller_does_not_read_does_not_move_its_clock() -> None:
    """A sensor with its clock years ahead (an MQTT device's own `ts`) must not make every
    server the controller drives look silent."""
    layout = FanLayout(("s1",), ("s1/fan1",), np.array([0]))
    registry = SeriesRegistry()
    cpu = registry.intern("s1", "cpu_temperature_celsius")
    probe = registry.intern("room/probe9", "temperature_celsius")
    view = TelemetryView(layout, registry)
    view.update(Batch.of([10_000, 4_100_000_000_000], [cpu, probe], [60.0, 21.0]))
    assert view.observation().now_ms == 10_000
