"""POST /maintenance, DELETE /maintenance/{entity}: take a device out of alerting and back.

While an entity (and everything under it: a server's fans) is in maintenance its alerts are
still recorded but nobody is notified; its state is MAINTENANCE (docs/ALERTS.md).
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, HTTPException

from rackwatch.api.auth import AccessFirstRoute, ControlAccess
from rackwatch.api.deps import AlertsDep, CtxDep
from rackwatch.api.lookup import check_entity
from rackwatch.api.schemas import ErrorOut, MaintenanceIn, MaintenanceOut, StateName
from rackwatch.engine.alerts.engine import AlertEngine

router = APIRouter(tags=["maintenance"], route_class=AccessFirstRoute)

_REFUSALS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
}


@router.post("/maintenance", responses={**_REFUSALS, 422: {"model": ErrorOut}})
async def start_maintenance(
    caller: ControlAccess, alerts: AlertsDep, ctx: CtxDep, body: MaintenanceIn
) -> MaintenanceOut:
    """Put an entity (a server, a rack, a fan ...) in maintenance; again: the reason is
    replaced. 422 for an entity that is not in the inventory or the telemetry."""
    entity = await check_entity(ctx, body.entity)
    await alerts.set_maintenance(entity, caller.issued_by, body.reason)
    return MaintenanceOut(entity=entity, state=_state(alerts, entity))


@router.delete("/maintenance/{entity:path}", responses={**_REFUSALS, 404: {"model": ErrorOut}})
async def end_maintenance(caller: ControlAccess, alerts: AlertsDep, entity: str) -> MaintenanceOut:
    """End the maintenance set on this entity; its state is derived again (OK, FAILED ...).
    404 if it is not in maintenance itself (maintenance of a parent is ended on the parent)."""
    try:
        await alerts.clear_maintenance(entity, caller.issued_by)
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=str(exc.args[0])) from None
    return MaintenanceOut(entity=entity, state=_state(alerts, entity))


def _state(alerts: AlertEngine, entity: str) -> StateName:
    details = alerts.state_details(entity)
    return cast(StateName, "UNKNOWN" if details is None else str(details["state"]).upper())
