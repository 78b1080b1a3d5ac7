"""The `monitoring_data` message: newest values of some series, and alert occurrences."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.api.encode import dumps
from rackwatch.api.fanout.groups import Ids
from rackwatch.model import SeriesKey
from rackwatch.model.times import iso


def monitoring_data(
    keys: list[SeriesKey],
    ids: Ids,
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    alerts: list[dict[str, Any]] | None = None,
) -> str:
    """The value of each series in `ids`, grouped by entity, stamped with the newest of their
    timestamps (NaN and infinities as null)."""
    values = value[ids].tolist()
    ts_ms = int(ts[ids].max())
    data: dict[str, dict[str, float | None]] = {}
    for i, v in zip(ids.tolist(), values, strict=True):
        entity, metric = keys[i]
        metrics = data.get(entity)
        if metrics is None:
            metrics = data[entity] = {}
        metrics[metric] = v
    message = {
        "type": "monitoring_data",
        "timestamp": iso(ts_ms),
        "ts_ms": ts_ms,
        "data": data,
        "alerts": alerts or [],
    }
    return dumps(message).decode()
