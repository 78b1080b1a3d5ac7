"""GET /inventory: every entity with its kind, parent and static attributes, and the declared
attributes that agents or PDUs report otherwise."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import StoreDep
from rackwatch.api.params import ParamError, excerpt
from rackwatch.api.schemas import DisagreementOut, EntityOut, ErrorOut, InventoryOut
from rackwatch.engine.inventory import disagreements
from rackwatch.model.entity import nearest_known_parent

router = APIRouter(tags=["inventory"], dependencies=[READ_ACCESS])

KINDS = ("site", "room", "crac", "cluster", "rack", "pdu", "outlet", "server", "machine", "fan")


@router.get("/inventory", responses={400: {"model": ErrorOut}})
async def get_inventory(
    store: StoreDep,
    kind: Annotated[
        str | None, Query(description=f"Only this kind: {', '.join(KINDS)} (or another stored)")
    ] = None,
) -> InventoryOut:
    """The inventory tree, ordered by path; `parent` links make the tree (null for roots)."""
    records = await run_in_threadpool(store.inventory)
    if kind is not None:
        known = set(KINDS) | {r.kind for r in records}
        if kind not in known:
            raise ParamError(f"unknown kind {excerpt(kind)}: use one of {', '.join(sorted(known))}")
    paths = {r.path for r in records}
    shown = [r for r in records if kind is None or r.kind == kind]
    return InventoryOut(
        disagreements=[
            DisagreementOut(
                path=d.path, field=d.field, declared=d.declared, discovered=d.discovered
            )
            for d in disagreements(shown)
        ],
        entities=[
            EntityOut(
                path=r.path,
                kind=r.kind,
                parent=nearest_known_parent(r.path, paths),
                attributes=dict(r.attributes),
            )
            for r in sorted(records, key=lambda r: r.path)
            if kind is None or r.kind == kind
        ],
    )
