"""Readings: what the real-machine sources (a host, its GPUs, a scraped exporter) collect.

A collection is a short list (a host: about a hundred values) of `Reading(entity, metric,
value)`; `to_batch` interns them and makes one columnar Batch stamped with the collection's
instant. Static facts (OS, sizes, models) are inventory items instead: plain dicts with
`entity`, `kind` and the attributes, the shape `Twin.inventory()` uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rackwatch.model.records import Batch
from rackwatch.model.series import SeriesRegistry

InventoryItem = dict[str, Any]
"""`{"entity": path, "kind": kind, <attribute>: <JSON value>, ...}`"""

_NOT_IN_SEGMENT = re.compile(r"[^A-Za-z0-9_.:-]+")
MAX_SEGMENT_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Reading:
    entity: str
    metric: str
    value: float


def segment(name: str, fallback: str = "unnamed") -> str:
    """A free-form name (a mount point, an interface, a sensor label) as one entity segment:
    runs of characters a segment does not allow become `_`, the ends are trimmed of `_`, and
    the result is at most 64 characters (`fallback` when nothing is left).

    >>> segment("/boot/efi"), segment("Package id 0"), segment("eth0"), segment("/")
    ('boot_efi', 'Package_id_0', 'eth0', 'unnamed')
    """
    cleaned = _NOT_IN_SEGMENT.sub("_", name).strip("_")[:MAX_SEGMENT_LENGTH]
    return cleaned or fallback


def to_batch(readings: Sequence[Reading], registry: SeriesRegistry, ts_ms: int) -> Batch:
    """One Batch of the readings at `ts_ms`. NaN stays (a sensor that answered nothing this
    time, as in the twin); an infinite value is left out, never stored as a number. A value
    the hardware does not have at all (a GPU without a fan) is no reading: collectors leave
    it out, so it makes no series."""
    kept = [r for r in readings if not math.isinf(r.value)]
    ids = registry.intern_many((r.entity, r.metric) for r in kept)
    values = np.fromiter((r.value for r in kept), dtype=np.float64, count=len(kept))
    return Batch.of(np.full(len(kept), ts_ms, dtype=np.int64), ids, values)
