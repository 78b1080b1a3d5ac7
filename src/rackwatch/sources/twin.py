"""Adapter from the twin library to a source: Batches out, Commands in.

Thin on purpose: the twin's series are interned once, each read is one `run` turned into a
columnar Batch (absent cells dropped, NaN kept), and commands go straight to `Twin.apply`.

>>> from rackwatch.model.series import SeriesRegistry
>>> from rackwatch.twin import Twin
>>> source = TwinSource(Twin("small"), SeriesRegistry())
>>> batch, events = source.read(2)
>>> len(batch), events
(144, [])
"""

from __future__ import annotations

from rackwatch.model.records import Batch, Command, Event
from rackwatch.model.series import SeriesRegistry
from rackwatch.twin.simulator import Twin


class TwinSource:
    """A Twin as a telemetry source; it paces nothing (the caller decides how often to read)."""

    name = "twin"

    def __init__(self, twin: Twin, registry: SeriesRegistry) -> None:
        self.twin = twin
        self.registry = registry
        self.series_ids = registry.intern_many(twin.series_keys)

    @property
    def now_ms(self) -> int:
        """The source's clock: the simulated instant of its next step."""
        return self.twin.now_ms

    def read(self, n_steps: int = 1) -> tuple[Batch, list[Event]]:
        """The next `n_steps` steps as one time-major Batch, and the Events they carry."""
        frame = self.twin.run(n_steps)
        batch = Batch.from_grid(frame.ts, self.series_ids, frame.values)
        if frame.absent is not None:
            batch = batch.take(~frame.absent.reshape(-1))
        return batch, frame.events

    def handle(self, command: Command) -> Event:
        """Apply a command to the twin; CommandRejected if it names no fan or a bad level."""
        return self.twin.apply(command)
