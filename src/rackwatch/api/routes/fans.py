"""GET /fans, POST /fans/mode, POST /fans/level: the fan controller, by hand.

A value the controller cannot take (a level of 7, a mode "turbo") or a target it does not
drive is a 422 and nothing is sent; a change the controller refuses after that is a 409.
Setting a level puts the fans in manual mode; `POST /fans/mode` hands them back to auto.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, HTTPException, Query

from rackwatch.api.auth import READ_ACCESS, AccessFirstRoute, ControlAccess
from rackwatch.api.deps import ControllerDep
from rackwatch.api.lookup import unprocessable
from rackwatch.api.params import check_entity_glob
from rackwatch.api.schemas import (
    ErrorOut,
    FanLevelIn,
    FanLevelOut,
    FanModeIn,
    FanModeOut,
    FanOut,
    FansOut,
)
from rackwatch.engine.control.modes import parse_level, parse_mode
from rackwatch.errors import CommandRejected
from rackwatch.model.entity import matches

router = APIRouter(tags=["fans"], route_class=AccessFirstRoute)

_REFUSALS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
Mode = Literal["auto", "manual"]


@router.get("/fans", dependencies=[READ_ACCESS], responses={400: {"model": ErrorOut}, 401: {}})
async def get_fans(
    controller: ControllerDep,
    entity: Annotated[str, Query(description="Entity glob over fan paths.")] = "**",
) -> FansOut:
    """Every fan the controller drives: mode, reported level, failed, fail-safe."""
    entity = check_entity_glob(entity)
    return FansOut(
        fans=[
            FanOut(
                entity=fan.fan,
                server=fan.server,
                mode=cast(Mode, fan.mode),
                level=fan.level,
                failed=fan.is_failed,
                failsafe=fan.is_failsafe,
            )
            for fan in controller.status()
            if entity == "**" or matches(fan.fan, entity)
        ]
    )


@router.post("/fans/mode", responses=_REFUSALS)
async def set_fan_mode(
    caller: ControlAccess, controller: ControllerDep, body: FanModeIn
) -> FanModeOut:
    """Put every fan at or below a fan, server, rack or cluster in auto or manual mode."""
    try:
        mode = parse_mode(body.mode)
        controller.layout.fans_under(body.entity)
    except CommandRejected as exc:
        raise unprocessable(str(exc)) from None
    try:
        await controller.set_mode(body.entity, mode, caller.issued_by)
    except CommandRejected as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return FanModeOut(entity=body.entity, mode=mode.value)


@router.post("/fans/level", responses=_REFUSALS)
async def set_fan_level(
    caller: ControlAccess, controller: ControllerDep, body: FanLevelIn
) -> FanLevelOut:
    """Set a fan, or every fan of a server, to a level (0..3 or off/low/medium/high); the
    fans go to manual mode. The source applies it at its next step (a `command.applied`
    event follows)."""
    try:
        level = parse_level(body.level)
        controller.layout.fans_of(body.entity)
    except CommandRejected as exc:
        raise unprocessable(str(exc)) from None
    try:
        await controller.set_level(body.entity, level, caller.issued_by)
    except CommandRejected as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return FanLevelOut(entity=body.entity, level=level, mode="manual")
