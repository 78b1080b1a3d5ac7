"""Checks that a control call names something that exists, before anything is sent.

A body that names an unknown entity is a 422 (a URL that does is a 404, in the routes).
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from rackwatch.api.deps import ApiContext
from rackwatch.model import entity as entity_path


def unprocessable(detail: str) -> HTTPException:
    return HTTPException(status_code=422, detail=detail)


async def entity_kind(ctx: ApiContext, entity: str, field: str = "entity") -> str | None:
    """The entity's inventory kind (None when it is known only by its series or as their
    ancestor); HTTPException 422 when the path is malformed or names nothing known."""
    _check_path(entity, field)
    records = await run_in_threadpool(ctx.store.inventory)
    for record in records:
        if record.path == entity:
            return record.kind
    if entity in ctx.series_entities():
        return None
    raise _unknown(entity, field)


async def check_entity(ctx: ApiContext, entity: str, field: str = "entity") -> str:
    """`entity` if it has series (or is their ancestor) or is in the inventory; else 422."""
    _check_path(entity, field)
    if entity in ctx.series_entities():
        return entity
    records = await run_in_threadpool(ctx.store.inventory)
    if any(record.path == entity for record in records):
        return entity
    raise _unknown(entity, field)


def _check_path(entity: str, field: str) -> None:
    try:
        entity_path.validate(entity)
    except ValueError as exc:
        raise unprocessable(f"{field}: {exc}") from None


def _unknown(entity: str, field: str) -> HTTPException:
    return unprocessable(
        f"{field}: no entity {entity!r} in the inventory or the telemetry; "
        "see GET /api/v1/inventory for the paths"
    )
