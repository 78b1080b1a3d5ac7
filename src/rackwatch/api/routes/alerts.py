"""GET /alerts, POST /alerts/{id}/ack: the alert engine's open (or recent) alerts."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from rackwatch.api.auth import READ_ACCESS, ControlAccess
from rackwatch.api.deps import AlertsDep
from rackwatch.api.params import check_entity_glob
from rackwatch.api.schemas import AlertAckOut, AlertOut, AlertsOut, ErrorOut
from rackwatch.engine.alerts.lifecycle import AlertNotFound
from rackwatch.model.entity import matches

router = APIRouter(tags=["alerts"])


@router.get("/alerts", dependencies=[READ_ACCESS], responses={400: {"model": ErrorOut}, 401: {}})
async def get_alerts(
    alerts: AlertsDep,
    state: Annotated[
        Literal["active", "all"],
        Query(description="`active`: firing or acknowledged; `all`: also recently resolved."),
    ] = "active",
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
) -> AlertsOut:
    """Open alerts, oldest first; with `state=all` also those resolved that the engine still
    keeps in its history (`[alerts] history` occurrences)."""
    entity = check_entity_glob(entity)
    found: dict[str, dict[str, Any]] = {}
    if state == "all":
        for occurrence in alerts.recent_alerts(-1):  # oldest first: the newest state wins
            found[occurrence["id"]] = occurrence
    for alert in alerts.active_alerts():
        found[alert.id] = alert.as_dict()
    chosen = sorted(
        (a for a in found.values() if entity == "**" or matches(a["entity"], entity)),
        key=lambda a: (a["fired_ts_ms"], a["rule"], a["entity"]),
    )
    return AlertsOut(alerts=[alert_out(a) for a in chosen])


@router.post(
    "/alerts/{alert_id}/ack",
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def acknowledge_alert(caller: ControlAccess, alerts: AlertsDep, alert_id: str) -> AlertAckOut:
    """Acknowledge an open alert (again: no change); 404 if no open alert has this id."""
    try:
        alert = await alerts.acknowledge(alert_id, caller.issued_by)
    except AlertNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return AlertAckOut(alert=alert_out(alert.as_dict()))


def alert_out(alert: dict[str, Any]) -> AlertOut:
    """An engine alert dict as the API's shape (NaN as null)."""
    clean = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in alert.items()
    }
    return AlertOut.model_validate(clean)
