"""Subscriptions: a `Filter` (what a client asked for) and the `Group` of clients that share one.

The fan-out encodes one text per group, not per client: a thousand dashboards on the room
overview cost one encoding. A group's series mask is computed once, when the filter first
appears, and extended when new series are registered, never per message.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rackwatch.model import SeriesKey
from rackwatch.model.entity import matches
from rackwatch.store.results import match_series

if TYPE_CHECKING:
    from rackwatch.api.fanout.alert_feed import AlertMark
    from rackwatch.api.fanout.client import Client

Ids = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class Filter:
    """What a subscription wants: an entity glob, metric names/globs (None: all) and a
    maximum message rate (None: every batch)."""

    entity: str = "**"
    metrics: tuple[str, ...] | None = None
    max_rate_hz: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "metrics": None if self.metrics is None else list(self.metrics),
            "max_rate_hz": self.max_rate_hz,
        }


class Group:
    """The clients that share one Filter, with the filter's series mask, its rate state (the
    series waiting for the next allowed message) and its place in the alert history."""

    def __init__(self, flt: Filter) -> None:
        self.filter = flt
        self.clients: set[Client] = set()
        self.mask = np.zeros(0, dtype=bool)
        self.pending = np.zeros(0, dtype=bool)
        self.min_interval_s = 0.0 if flt.max_rate_hz is None else 1.0 / flt.max_rate_hz
        self.last_sent_s = -math.inf
        self.timer: asyncio.TimerHandle | None = None
        self.alerts_mark: AlertMark | None = None
        """The last alert occurrence considered for a message (None: none yet)."""

    def wants_alert(self, alert: dict[str, Any]) -> bool:
        entity = self.filter.entity
        return entity == "**" or matches(str(alert["entity"]), entity)

    def extend(self, keys: list[SeriesKey]) -> None:
        """Match the series registered since the mask was last extended (only those)."""
        known = len(self.mask)
        if len(keys) <= known:
            return
        new = np.zeros(len(keys) - known, dtype=bool)
        new[match_series(keys[known:], self.filter.entity, self.filter.metrics)] = True
        self.mask = np.concatenate([self.mask, new])
        self.pending = np.concatenate([self.pending, np.zeros(len(new), dtype=bool)])

    def select(self, ids: Ids) -> Ids:
        """The ids (sorted, unique, all < len(mask)) this group wants."""
        return ids[self.mask[ids]]
