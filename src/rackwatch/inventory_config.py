"""The declared inventory of the settings (`[inventory]`: its own tables and the file it
names) synced into the store: at the start of `rackwatch run` and by `rackwatch inventory
sync` (docs/INVENTORY.md). Each change is an `inventory.changed` event, each value a source
reports otherwise an `inventory.disagreement` event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rackwatch.engine import inventory as inv
from rackwatch.settings import Settings
from rackwatch.store.base import Store


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    plan: inv.SyncPlan
    disagreements: list[inv.Disagreement]
    sources: tuple[str, ...]
    """Where the declarations came from (the file, the settings)."""


def declared(settings: Settings) -> tuple[inv.DeclaredInventory, tuple[str, ...]]:
    """The settings' declarations, the file's included; InventoryError says what is wrong."""
    section = settings.inventory
    parts: list[tuple[inv.DeclaredInventory, str]] = []
    inline = inv.DeclaredInventory.model_validate(section.model_dump(exclude={"file"}))
    if inline.items():
        parts.append((inline, "the settings' [inventory]"))
    if section.file is not None:
        parts.append((inv.load_file(Path(section.file)), str(section.file)))
    return inv.combine(parts), tuple(where for _, where in parts)


def sync(settings: Settings, store: Store, now_ms: int, *, dry_run: bool = False) -> SyncOutcome:
    """Bring the store's inventory to the declaration (nothing declared: nothing removed
    either, unless something was declared before)."""
    decl, sources = declared(settings)
    plan = inv.plan_sync(inv.declared_records(decl), store.inventory())
    if not dry_run:
        kept = [r.path for r in plan.keep_discovered]
        store.remove_inventory([*plan.remove, *kept])
        store.upsert_inventory([*plan.write, *plan.keep_discovered])
    found = inv.disagreements(store.inventory() if not dry_run else plan.write)
    if not dry_run:
        store.write_events([*plan.events(now_ms), *inv.disagreement_events(found, now_ms)])
    return SyncOutcome(plan, found, sources)
