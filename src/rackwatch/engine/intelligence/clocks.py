"""Each source's own clock, and which source speaks for each entity.

The twin's samples carry simulated time (ahead of the wall clock at `--speed` > 1, or in the
past for a replay); this machine, agents and scrapes carry the wall clock. A forecast made on
the twin's stream counts down on the twin's clock, and a health sample of a twin server is
stamped with twin time, so the intelligence keeps one clock per source (its newest sample)
and remembers which source first sent each entity. An entity's ancestors (rack, cluster, the
room; `host` for real machines) take the source of the first member seen.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from rackwatch.engine.health import parent_of
from rackwatch.engine.intelligence.roles import SeriesRoles
from rackwatch.model import Batch


class SourceClocks:
    def __init__(self, roles: SeriesRoles) -> None:
        self.roles = roles
        self.now: dict[str, int] = {}
        """Source -> its newest sample (ms)."""
        self._source_of: dict[str, str] = {}
        self._frozen: Mapping[str, str] = {}
        self._attributed = np.zeros(0, dtype=np.bool_)

    def observe(self, batch: Batch, source: str) -> None:
        if not len(batch):
            return
        newest = int(batch.ts.max())
        self.now[source] = max(self.now.get(source, newest), newest)
        n = len(self.roles)
        if len(self._attributed) < n:
            extra = np.zeros(n - len(self._attributed), dtype=np.bool_)
            self._attributed = np.concatenate([self._attributed, extra])
        fresh: npt.NDArray[np.int32] = np.unique(batch.series[~self._attributed[batch.series]])
        if not len(fresh):
            return
        self._attributed[fresh] = True
        changed = False
        for sid in fresh.tolist():
            node: str | None = self.roles.entity[sid]
            while node is not None and node not in self._source_of:
                self._source_of[node] = source
                changed = True
                node = parent_of(node)
        if changed:
            self._frozen = dict(self._source_of)

    @property
    def source_of(self) -> Mapping[str, str]:
        """Entity -> its source (a copy, replaced when it changes: safe to read elsewhere)."""
        return self._frozen

    def newest_ms(self) -> int | None:
        return max(self.now.values(), default=None)
