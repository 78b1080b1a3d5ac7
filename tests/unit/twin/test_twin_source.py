"""TwinSource: the twin as a source of Batches that obeys Commands."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.errors import CommandRejected
from rackwatch.model import Command, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin


def test_read_builds_a_time_major_batch_with_interned_ids() -> None:
    registry = SeriesRegistry()
    registry.intern("host/x", "cpu_utilization_ratio")  # ids need not start at 0
    source = TwinSource(Twin("small", seed=1), registry)
    batch, events = source.read(3)
    n = len(source.twin.series_keys)
    assert len(batch) == 3 * n and events == []
    assert batch.series[:n].tolist() == source.series_ids.tolist()
    assert registry.key(int(batch.series[0])) == source.twin.series_keys[0]
    assert batch.ts[0] == batch.ts[n - 1] < batch.ts[n]


def test_read_drops_absent_rows_and_keeps_nan_rows() -> None:
    twin = Twin("small", seed=1)
    twin.inject("telemetry_loss", "c01", {"fraction": 0.5, "duration_s": 120.0})
    twin.inject("sensor_null", "c01/r01/s01")
    source = TwinSource(twin, SeriesRegistry())
    batch, events = source.read(24)
    n = len(twin.series_keys)
    assert 0 < 24 * n - len(batch) < 24 * n * 0.5
    assert np.isnan(batch.value).sum() > 0
    assert sorted(e.attributes["fault"] for e in events) == ["sensor_null", "telemetry_loss"]


def test_handle_forwards_commands() -> None:
    source = TwinSource(Twin("small"), SeriesRegistry())
    event = source.handle(Command("c01/r01/s02/fan1", "fan.set_level", {"level": 1}))
    assert event.entity == "c01/r01/s02/fan1"
    assert source.twin.fan_levels()["c01/r01/s02/fan1"] == 1
    with pytest.raises(CommandRejected):
        source.handle(Command("c01/r01/s02/fan3", "fan.set_level", {"level": 1}))
