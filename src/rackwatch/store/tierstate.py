"""In-memory rollup buckets of one tier that are not in the database yet.

Buckets start at or after `flushed_to` (everything before is in the table). A bucket is
*closed* once the watermark (largest ts seen) passed its end plus `lateness_ms`; closed buckets
wait here for the next flush, open ones keep merging new partials. Data normally lands in open
buckets only, so a write merges a few thousand rows, not the whole state.
"""

from __future__ import annotations

from rackwatch.store import rollup
from rackwatch.store.rollup import Partials

_NO_TS = -(2**63)


class TierState:
    def __init__(self, width_ms: int, flushed_to: int, lateness_ms: int = 0) -> None:
        self.width_ms = width_ms
        self.flushed_to = flushed_to
        self.lateness_ms = lateness_ms
        self.closed_to = flushed_to
        """Buckets starting before this are closed (no newer than the watermark allows)."""
        self._closed: list[Partials] = []
        self._open = rollup.empty()

    def horizon(self, watermark: int) -> int:
        """Start of the first bucket still open at `watermark`."""
        if watermark == _NO_TS:
            return self.flushed_to
        edge = watermark - self.lateness_ms
        return max(self.flushed_to, edge - edge % self.width_ms)

    def add(self, p: Partials, watermark: int) -> None:
        """Merge partials of this width whose buckets start at or after `flushed_to`."""
        if len(p):
            late = p.bucket < self.closed_to
            if late.any():  # rare: data for a bucket already closed but not yet flushed
                self._closed = [
                    rollup.combine(rollup.concat([*self._closed, p.take(late)]), self.width_ms)
                ]
                p = p.take(~late)
            self._open = rollup.combine(rollup.concat([self._open, p]), self.width_ms)
        self.closed_to = max(self.closed_to, self.horizon(watermark))
        closing = self._open.bucket < self.closed_to
        if closing.any():
            self._closed.append(self._open.take(closing))
            self._open = self._open.take(~closing)

    def closed(self) -> Partials:
        if len(self._closed) > 1:
            self._closed = [rollup.concat(self._closed)]
        return self._closed[0] if self._closed else rollup.empty()

    def snapshot(self) -> Partials:
        """Every bucket held here (closed then open); the arrays are never mutated."""
        return rollup.concat([self.closed(), self._open])

    def flushed(self) -> None:
        """The closed buckets are now in the table."""
        self._closed = []
        self.flushed_to = self.closed_to

    @property
    def n_closed_rows(self) -> int:
        return sum(len(p) for p in self._closed)

    @property
    def n_rows(self) -> int:
        return sum(len(p) for p in self._closed) + len(self._open)
