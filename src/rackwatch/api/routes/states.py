"""GET /states: each device's state (OK ... FAILED, MAINTENANCE, UNKNOWN), what it shows (the
worst of its own state and its parts', with the open alerts under it counted), and server
usage. Racks and clusters, which send no telemetry, are listed by what their devices show."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import AlertReadout, AlertReadoutDep
from rackwatch.api.params import check_entity_glob
from rackwatch.api.schemas import (
    AlertCountsOut,
    ErrorOut,
    MaintenanceInfoOut,
    StateName,
    StateOut,
    StatesOut,
)
from rackwatch.engine.states import DeviceState, Maintenance, Rollup
from rackwatch.model.entity import compile_pattern

router = APIRouter(tags=["states"])

NO_STATE_OF_ITS_OWN = "no telemetry of its own: it shows its devices' states (rollup_state)"


@router.get("/states", dependencies=[READ_ACCESS], responses={400: {"model": ErrorOut}, 401: {}})
async def get_states(
    alerts: AlertReadoutDep,
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    state: Annotated[
        list[StateName] | None,
        Query(description="Only entities whose own state is one of these (repeatable)."),
    ] = None,
) -> StatesOut:
    """Every entity that sent telemetry or was put in maintenance, and each ancestor of one
    (racks, clusters: `state` null), by path. `rollup_state` is the worst of the entity's
    own state and every descendant's (FAILED > CRITICAL > WARNING > UNKNOWN > MAINTENANCE >
    OK), `rollup_from` the descendant it comes from, `alerts` the open alerts on the entity
    and under it; `usage` (busy, idle) is given for servers. The roll-up always covers every
    descendant, whatever `entity` selects. Cost: one walk up each path, about 2 ms per
    thousand entities (measured: 24 ms for 12,000), on the loop like the rest of the route."""
    entity = check_entity_glob(entity)
    pattern = compile_pattern(entity)
    usage = alerts.usage()
    wanted = None if state is None else set(state)
    entities: dict[str, StateOut] = {}
    for path, rollup in alerts.rollups().items():
        if not pattern.match(path):
            continue
        if wanted is not None and (rollup.state is None or _name(rollup.state) not in wanted):
            continue
        found = usage.get(path)
        out = state_out(alerts, path, rollup, None if found is None else found.value)
        if out is not None:
            entities[path] = out
    return StatesOut(entities=entities)


def _name(state: DeviceState) -> StateName:
    return cast(StateName, str(state).upper())


def state_out(
    alerts: AlertReadout, entity: str, rollup: Rollup, usage: str | None = None
) -> StateOut | None:
    """The API shape of one entity's state and roll-up (None: the engine no longer knows an
    entity that should have a state of its own)."""
    if rollup.state is None:
        own: StateName | None = None
        since_ms: int | None = None
        reason = NO_STATE_OF_ITS_OWN
        maintenance = _maintenance(alerts.maintenance_of(entity))
    else:
        details = alerts.state_details(entity)
        if details is None:
            return None
        own = cast(StateName, str(details["state"]).upper())
        since_ms, reason = details["since_ts_ms"], details["reason"]
        found = details["maintenance"]
        maintenance = (
            None
            if found is None
            else MaintenanceInfoOut(
                by=found["by"], reason=found["reason"], since_ms=found["since_ts_ms"]
            )
        )
    return StateOut(
        state=own,
        since_ms=since_ms,
        reason=reason,
        usage=cast(Literal["busy", "idle"] | None, usage),
        maintenance=maintenance,
        rollup_state=_name(rollup.rollup_state),
        rollup_from=rollup.rollup_from,
        alerts=AlertCountsOut(warning=rollup.n_warning, critical=rollup.n_critical),
    )


def _maintenance(found: Maintenance | None) -> MaintenanceInfoOut | None:
    if found is None:
        return None
    return MaintenanceInfoOut(by=found.by, reason=found.reason, since_ms=found.since_ts)
