"""The inventory a site declares (seed 003's configuration files): sites, rooms, racks, PDUs
and their outlets, machines, checked, turned into inventory records, and reconciled with what
the store holds and what agents and PDUs discover.

- **Declared** (`DeclaredInventory`, from a TOML file or the settings' `[inventory]` tables):
  every entity by its path, the references between them checked (a machine's rack, a
  machine's outlets on a declared PDU and within its outlet count, no outlet used twice).
- **Records** (`declared_records`): one per entity, kinds `site`, `room`, `rack`, `pdu`,
  `outlet` (`<pdu>/outletNN`, with `pdu`, `number` and `machine`) and the machine's own kind;
  each carries `declared`: the attribute names the configuration owns.
- **Sync** (`plan_sync`): against the stored inventory, the records to write (declared
  attributes over whatever was discovered there), the paths to remove (declared before, not
  any more), and what was added, changed or removed, each an `inventory.changed` event.
- **Disagreements** (`disagreements`): where an agent or a PDU reports a value for a declared
  attribute that differs (the store keeps the discovered value under `discovered`), e.g. a
  declared 512 GiB of memory against 503 GiB found: reported, the declaration wins.

>>> decl = DeclaredInventory.model_validate({
...     "racks": [{"path": "c01/r01", "slots": 42}],
...     "pdus": [{"path": "c01/r01/pdu1", "rack": "c01/r01", "outlets": 24}],
...     "machines": [{"path": "host/gpu01", "rack": "c01/r01", "slot": 12,
...                   "outlets": ["c01/r01/pdu1:3", "c01/r01/pdu1:4"], "owner": "ml"}]})
>>> [(r.path, r.kind) for r in declared_records(decl)]  # doctest: +NORMALIZE_WHITESPACE
[('c01/r01', 'rack'), ('c01/r01/pdu1', 'pdu'), ('c01/r01/pdu1/outlet03', 'outlet'),
 ('c01/r01/pdu1/outlet04', 'outlet'), ('host/gpu01', 'machine')]
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from rackwatch.errors import RackwatchError
from rackwatch.model import Event, EventKind, Severity
from rackwatch.model.entity import validate
from rackwatch.store.base import EntityRecord
from rackwatch.store.inventory import DECLARED, DISCOVERED, overlay

INVENTORY_CHANGED = EventKind.INVENTORY_CHANGED
INVENTORY_DISAGREEMENT = EventKind.INVENTORY_DISAGREEMENT
MAX_ITEMS = 100_000
_COMPARED: dict[str, tuple[str, float]] = {
    "memory_gib": ("memory_total_bytes", 2**30),
}
"""Declared names a source reports under another name and unit (name, units per declared
unit): compared within 5 %."""


class InventoryError(RackwatchError):
    """The declared inventory is refused; the message says where and why."""


def _path(value: str) -> str:
    return validate(value)


EntityPath = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_path)]
Text = Annotated[str, Field(max_length=256)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: EntityPath
    name: Text | None = None
    """A human name (the path is the identity)."""


class Site(_Item):
    address: Text | None = None


class Room(_Item):
    site: EntityPath | None = None


class Rack(_Item):
    room: EntityPath | None = None
    slots: int | None = Field(None, ge=1, le=200)


class Pdu(_Item):
    rack: EntityPath | None = None
    outlets: int | None = Field(None, ge=1, le=512, description="How many outlets it has.")
    host: Text | None = None
    model: Text | None = None


class Machine(_Item):
    kind: Literal["machine", "server", "host", "gpu-server", "storage", "switch"] = "machine"
    address: Text | None = None
    location: Text | None = None
    rack: EntityPath | None = None
    slot: int | None = Field(None, ge=1, le=200)
    outlets: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,256}:[0-9]{1,3}$")]] = Field(
        default_factory=list, max_length=16, description="`<pdu path>:<outlet number>`."
    )
    memory_gib: float | None = Field(None, gt=0, le=1_000_000)
    disks: list[Text] = Field(default_factory=list, max_length=256)
    gpu_count: int | None = Field(None, ge=0, le=1024)
    gpu_models: list[Text] = Field(default_factory=list, max_length=64)
    cuda_version: Text | None = None
    owner: Text | None = None


class DeclaredInventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: list[Site] = Field(default_factory=list, max_length=MAX_ITEMS)
    rooms: list[Room] = Field(default_factory=list, max_length=MAX_ITEMS)
    racks: list[Rack] = Field(default_factory=list, max_length=MAX_ITEMS)
    pdus: list[Pdu] = Field(default_factory=list, max_length=MAX_ITEMS)
    machines: list[Machine] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredInventory:
        seen: set[str] = set()
        for item in self.items():
            if item.path in seen:
                raise ValueError(f"{item.path!r} is declared twice")
            seen.add(item.path)
        declared = {
            "site": {s.path for s in self.sites},
            "room": {r.path for r in self.rooms},
            "rack": {r.path for r in self.racks},
        }
        for owner, kind, ref in (
            *((r.path, "site", r.site) for r in self.rooms),
            *((r.path, "room", r.room) for r in self.racks),
            *((p.path, "rack", p.rack) for p in self.pdus),
            *((m.path, "rack", m.rack) for m in self.machines),
        ):
            if ref is not None and ref not in declared[kind]:
                raise ValueError(f"{owner!r} names {kind} {ref!r}, which is not declared")
        pdus = {p.path: p for p in self.pdus}
        used: dict[tuple[str, int], str] = {}
        for m in self.machines:
            for ref in m.outlets:
                pdu, number = _outlet(ref)
                if pdu not in pdus:
                    raise ValueError(f"{m.path!r} is plugged into {pdu!r}, not a declared PDU")
                n_outlets = pdus[pdu].outlets
                if number < 1 or (n_outlets is not None and number > n_outlets):
                    raise ValueError(
                        f"{m.path!r}: outlet {number} of {pdu!r} does not exist "
                        f"(it has {n_outlets})"
                    )
                if (pdu, number) in used:
                    raise ValueError(
                        f"outlet {number} of {pdu!r} is given to both "
                        f"{used[(pdu, number)]!r} and {m.path!r}"
                    )
                used[(pdu, number)] = m.path
        return self

    def items(self) -> list[_Item]:
        return [*self.sites, *self.rooms, *self.racks, *self.pdus, *self.machines]


def _outlet(ref: str) -> tuple[str, int]:
    pdu, _, number = ref.rpartition(":")
    return pdu, int(number)


def outlet_path(pdu: str, number: int) -> str:
    return f"{pdu}/outlet{number:02d}"


def load(data: Mapping[str, Any], where: str) -> DeclaredInventory:
    """The declared inventory from parsed TOML; InventoryError names `where` and the field."""
    try:
        return DeclaredInventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "(top)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InventoryError(f"{where}: {at}: {first['msg']}{more}") from None


MAX_FILE_BYTES = 32 * 1024 * 1024


def load_file(path: Path) -> DeclaredInventory:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InventoryError(
                f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB: not an inventory file?"
            )
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"cannot read the inventory file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path} is not valid TOML: {exc}") from None
    return load(data, str(path))


def combine(parts: Sequence[tuple[DeclaredInventory, str]]) -> DeclaredInventory:
    """Several declarations (a file, the settings' own tables) as one, checked together."""
    data: dict[str, list[Any]] = {"sites": [], "rooms": [], "racks": [], "pdus": [], "machines": []}
    for decl, _where in parts:
        for key in data:
            data[key] += [item.model_dump() for item in getattr(decl, key)]
    return load(data, " + ".join(where for _, where in parts) or "the inventory")


def declared_records(decl: DeclaredInventory) -> list[EntityRecord]:
    """One record per declared entity (and outlet), ordered by path."""
    out: list[EntityRecord] = []
    for kind, items in (
        ("site", decl.sites),
        ("room", decl.rooms),
        ("rack", decl.racks),
        ("pdu", decl.pdus),
    ):
        for item in items:
            out.append(_record(item.path, kind, item.model_dump(exclude={"path"})))
    for m in decl.machines:
        attributes = m.model_dump(exclude={"path", "kind"})
        out.append(_record(m.path, m.kind, attributes))
        for ref in m.outlets:
            pdu, number = _outlet(ref)
            outlet = {"pdu": pdu, "number": number, "machine": m.path}
            out.append(_record(outlet_path(pdu, number), "outlet", outlet))
    return sorted(out, key=lambda r: r.path)


def _record(path: str, kind: str, attributes: Mapping[str, Any]) -> EntityRecord:
    kept = {k: v for k, v in attributes.items() if v is not None and v != []}
    return EntityRecord(path, kind, {**kept, DECLARED: sorted(kept)})


# --------------------------------------------------------------------------- reconciling


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    change: Literal["added", "changed", "removed"]
    kind: str
    fields: tuple[str, ...] = ()
    """The declared attributes that changed."""


@dataclass(frozen=True, slots=True)
class SyncPlan:
    write: list[EntityRecord] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    """Paths declared before and not any more (a discovered part, if any, is kept)."""
    keep_discovered: list[EntityRecord] = field(default_factory=list)
    """What stays of a removed declaration that a source also reported."""
    changes: list[Change] = field(default_factory=list)

    def events(self, ts_ms: int) -> list[Event]:
        return [
            Event(
                ts=ts_ms,
                kind=INVENTORY_CHANGED,
                entity=c.path,
                severity=Severity.INFO,
                attributes={"change": c.change, "kind": c.kind, "fields": list(c.fields)},
            )
            for c in self.changes
        ]


def plan_sync(declared: Sequence[EntityRecord], stored: Iterable[EntityRecord]) -> SyncPlan:
    """What to write and remove so that the store holds `declared` (see the module text)."""
    now = {r.path: r for r in stored}
    wanted = {r.path for r in declared}
    plan = SyncPlan()
    for record in declared:
        old = now.get(record.path)
        merged = overlay(old, record)
        if old is not None and old == merged:
            continue
        plan.write.append(merged)
        if old is None or DECLARED not in old.attributes:
            plan.changes.append(Change(record.path, "added", record.kind))
        else:
            fields = _changed_fields(old, merged)
            plan.changes.append(Change(record.path, "changed", record.kind, fields))
    for path, old in now.items():
        owned = old.attributes.get(DECLARED)
        if owned is None or path in wanted:
            continue
        plan.changes.append(Change(path, "removed", old.kind))
        found = dict(old.attributes.get(DISCOVERED, {}))
        rest = {k: v for k, v in old.attributes.items() if k not in owned}
        rest.pop(DECLARED, None)
        rest.pop(DISCOVERED, None)
        rest.update(found)
        if len(rest) > 0 and old.kind not in ("site", "room", "rack", "outlet"):
            plan.keep_discovered.append(EntityRecord(path, old.kind, rest))
        else:
            plan.remove.append(path)
    return plan


def _changed_fields(old: EntityRecord, new: EntityRecord) -> tuple[str, ...]:
    keys = set(old.attributes) | set(new.attributes)
    keys -= {DECLARED, DISCOVERED}
    changed = {k for k in keys if old.attributes.get(k) != new.attributes.get(k)}
    if old.kind != new.kind:
        changed.add("kind")
    return tuple(sorted(changed))


@dataclass(frozen=True, slots=True)
class Disagreement:
    path: str
    field: str
    declared: Any
    discovered: Any


def disagreements(records: Iterable[EntityRecord]) -> list[Disagreement]:
    """Declared values a source reported otherwise (the declaration wins)."""
    out = []
    for r in records:
        owned = set(r.attributes.get(DECLARED, ()))
        if not owned:
            continue
        found = r.attributes.get(DISCOVERED, {})
        for key in sorted(owned):
            if key in found and found[key] != r.attributes.get(key):
                out.append(Disagreement(r.path, key, r.attributes.get(key), found[key]))
        for key, (other, scale) in _COMPARED.items():
            declared, seen = _number(r.attributes.get(key)), _number(r.attributes.get(other))
            if key in owned and declared is not None and seen is not None:
                found_value = seen / scale
                if abs(found_value - declared) > 0.05 * declared:
                    out.append(Disagreement(r.path, key, declared, round(found_value, 1)))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def disagreement_events(found: Sequence[Disagreement], ts_ms: int) -> list[Event]:
    return [
        Event(
            ts=ts_ms,
            kind=INVENTORY_DISAGREEMENT,
            entity=d.path,
            severity=Severity.WARNING,
            attributes={"field": d.field, "declared": d.declared, "discovered": d.discovered},
        )
        for d in found
    ]


MAX_KIND = 64


def announcements(entities: Iterable[EntityRecord], ts_ms: int) -> list[Event]:
    """Inventory entries as `inventory.item` events, for a producer on a NATS bus with no
    store of its own (a twin worker, an agent): the store worker keeps them.

    >>> [e] = announcements([EntityRecord("c01/r01/s01", "server", {"slot": 1})], 5000)
    >>> (str(e.kind), e.entity, dict(e.attributes))
    ('inventory.item', 'c01/r01/s01', {'kind': 'server', 'attributes': {'slot': 1}})
    """
    return [
        Event(
            ts_ms,
            EventKind.INVENTORY_ITEM,
            entity.path,
            Severity.INFO,
            {"kind": entity.kind, "attributes": dict(entity.attributes)},
        )
        for entity in entities
    ]


@dataclass(frozen=True)
class Announced:
    """Events split: the inventory entries announced, the other events, and how many
    announcements were malformed (left out)."""

    entities: list[EntityRecord]
    events: list[Event]
    n_malformed: int


def split_announcements(events: Iterable[Event]) -> Announced:
    """The entries of the `inventory.item` events among `events`, and the rest.

    >>> good = announcements([EntityRecord("c01/r01", "rack")], 0)[0]
    >>> bad = Event(0, "inventory.item", "c01/r02", attributes={"kind": 7})
    >>> other = Event(0, "fault.injected", "c01/r01/s01")
    >>> split = split_announcements([good, bad, other])
    >>> ([e.path for e in split.entities], [e.kind for e in split.events], split.n_malformed)
    (['c01/r01'], ['fault.injected'], 1)
    """
    entities: list[EntityRecord] = []
    others: list[Event] = []
    n_malformed = 0
    for event in events:
        if event.kind != EventKind.INVENTORY_ITEM:
            others.append(event)
            continue
        kind = event.attributes.get("kind")
        attributes = event.attributes.get("attributes", {})
        if isinstance(kind, str) and 0 < len(kind) <= MAX_KIND and isinstance(attributes, Mapping):
            entities.append(EntityRecord(event.entity, kind, dict(attributes)))
        else:
            n_malformed += 1
    return Announced(entities, others, n_malformed)
