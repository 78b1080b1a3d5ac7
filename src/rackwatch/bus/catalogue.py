"""Series ids that mean the same thing in every process on a NATS bus.

A Batch names its series by dense int32 ids from the publishing process's SeriesRegistry, so
a Batch read in another process (a worker, a front end) means nothing without that registry.
Each publishing process therefore owns a *space* (a token such as `twin` or `agent-h01`) and
keeps its registry's keys in a JetStream key-value bucket, in chunks of `CHUNK` ids:
`<space>.<chunk>` holds the keys of ids `chunk*CHUNK ...` as `entity\\tmetric` lines. A
publisher writes the chunks its new ids fall in before the first Batch that uses them (a
reader can always resolve what it receives), and a restarted publisher reads its space back
so its ids stay what they were. A reader maps another space's ids onto its own registry with
one array lookup per Batch; ids it has not seen yet cost one bucket read per chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from rackwatch.model import Batch, SeriesKey, SeriesRegistry

CHUNK = 4096
"""Ids per bucket entry: 4,096 keys of about 40 bytes stay well under NATS's 1 MB payload."""
SPACE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CatalogueError(ValueError):
    """A space name that is not one token, or a bucket entry that is not a chunk of keys."""


def check_space(space: str) -> str:
    if not SPACE.fullmatch(space):
        raise CatalogueError(f"a series space is 1-64 letters, digits, _ or -: {space!r}")
    return space


def bucket_name(prefix: str) -> str:
    return f"{(prefix or 'rackwatch').upper()}_SERIES"


async def open_bucket(js: JetStreamContext, prefix: str) -> KeyValue:
    """The catalogue's bucket, made if missing (one value per key: no history kept)."""
    name = bucket_name(prefix)
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE)
        )


def _encode(keys: list[SeriesKey]) -> bytes:
    return "\n".join(f"{k.entity}\t{k.metric}" for k in keys).encode()


def _decode(value: bytes | None) -> list[SeriesKey]:
    if not value:
        return []
    keys = []
    for line in value.decode().split("\n"):
        entity, tab, metric = line.partition("\t")
        if not tab or not entity or not metric:
            raise CatalogueError(f"not a series key line: {line[:80]!r}")
        keys.append(SeriesKey(entity, metric))
    return keys


async def read_space(kv: KeyValue, space: str) -> list[SeriesKey]:
    """Every key of `space`, in id order (empty for a space never written)."""
    keys: list[SeriesKey] = []
    chunk = 0
    while True:
        part = await _read_chunk(kv, space, chunk)
        keys.extend(part)
        if len(part) < CHUNK:
            return keys
        chunk += 1


async def _read_chunk(kv: KeyValue, space: str, chunk: int) -> list[SeriesKey]:
    try:
        entry = await kv.get(f"{space}.{chunk}")
    except KeyNotFoundError:
        return []
    return _decode(entry.value)


@dataclass
class Publisher:
    """Keeps `registry`'s keys in the bucket under `space` (see the module's docstring)."""

    kv: KeyValue
    space: str
    registry: SeriesRegistry
    written: int = 0
    """Ids 0..written-1 are in the bucket."""

    async def load(self) -> None:
        """Take back the ids this space had (a restarted publisher keeps its ids). Keys the
        registry interned before differ from the stored ones: refused (CatalogueError)."""
        stored = await read_space(self.kv, check_space(self.space))
        for series_id, key in enumerate(stored):
            if self.registry.intern(*key) != series_id:
                raise CatalogueError(
                    f"series space {self.space!r} holds {key} as id {series_id}, but this "
                    "process gave that id to another series: use another space name"
                )
        self.written = len(stored)

    async def sync(self) -> None:
        """Write the chunks holding ids interned since the last sync."""
        known = len(self.registry)
        if known <= self.written:
            return
        keys = self.registry.keys()
        for chunk in range(self.written // CHUNK, (known - 1) // CHUNK + 1):
            await self.kv.put(
                f"{self.space}.{chunk}", _encode(keys[chunk * CHUNK : (chunk + 1) * CHUNK])
            )
        self.written = known


@dataclass
class Resolver:
    """Maps Batches of other spaces onto `registry`'s ids."""

    kv: KeyValue
    registry: SeriesRegistry
    own_space: str | None = None
    """Batches of this space already use `registry`'s ids (the process reads its own)."""
    _tables: dict[str, npt.NDArray[np.int32]] = field(default_factory=dict)
    n_unresolved: int = 0
    """Samples dropped because their id was in no chunk of their space."""

    async def resolve(self, space: str, batch: Batch) -> Batch:
        if space == self.own_space or not len(batch):
            return batch
        table = self._tables.get(space, np.empty(0, np.int32))
        ids = batch.series
        if int(ids.max()) >= len(table):
            table = await self._extend(space, table, int(ids.max()) + 1)
        inside = (ids >= 0) & (ids < len(table))
        if inside.all():
            return Batch(batch.ts, table[ids], batch.value)
        self.n_unresolved += int((~inside).sum())
        return Batch(batch.ts[inside], table[ids[inside]], batch.value[inside])

    async def _extend(
        self, space: str, table: npt.NDArray[np.int32], wanted: int
    ) -> npt.NDArray[np.int32]:
        """Read the chunks from the first id not in `table` up to id `wanted - 1`; the table
        ends where the space's keys end (ids past them stay unresolved)."""
        parts = [table[: len(table) - len(table) % CHUNK]]  # whole chunks are final
        for chunk in range(len(table) // CHUNK, (wanted - 1) // CHUNK + 1):
            keys = await _read_chunk(self.kv, space, chunk)
            parts.append(np.array([self.registry.intern(*k) for k in keys], np.int32))
            if len(keys) < CHUNK:
                break
        grown = np.concatenate(parts)
        self._tables[space] = grown
        return grown
