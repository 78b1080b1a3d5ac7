"""GET /states: each device's state (OK ... FAILED, MAINTENANCE, UNKNOWN) and server usage."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import AlertsDep
from rackwatch.api.params import check_entity_glob
from rackwatch.api.schemas import ErrorOut, MaintenanceInfoOut, StateName, StateOut, StatesOut
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.model.entity import matches

router = APIRouter(tags=["states"])


@router.get("/states", dependencies=[READ_ACCESS], responses={400: {"model": ErrorOut}, 401: {}})
async def get_states(
    alerts: AlertsDep,
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    state: Annotated[
        list[StateName] | None, Query(description="Only these states (repeatable).")
    ] = None,
) -> StatesOut:
    """Every entity that sent telemetry or was put in maintenance, by path; `usage` (busy,
    idle) is given for servers."""
    entity = check_entity_glob(entity)
    usage = alerts.usage()
    wanted = None if state is None else set(state)
    entities: dict[str, StateOut] = {}
    for path in alerts.states():
        if entity != "**" and not matches(path, entity):
            continue
        found = usage.get(path)
        out = state_out(alerts, path, None if found is None else found.value)
        if out is not None and (wanted is None or out.state in wanted):
            entities[path] = out
    return StatesOut(entities=entities)


def state_out(alerts: AlertEngine, entity: str, usage: str | None = None) -> StateOut | None:
    """The API shape of one entity's state (None: the engine does not know it)."""
    details = alerts.state_details(entity)
    if details is None:
        return None
    maintenance: dict[str, Any] | None = details["maintenance"]
    return StateOut(
        state=cast(StateName, str(details["state"]).upper()),
        since_ms=details["since_ts_ms"],
        reason=details["reason"],
        usage=cast(Literal["busy", "idle"] | None, usage),
        maintenance=None
        if maintenance is None
        else MaintenanceInfoOut(
            by=maintenance["by"], reason=maintenance["reason"], since_ms=maintenance["since_ts_ms"]
        ),
    )
