"""GET /twin/faults, POST /twin/faults: the twin's fault catalogue, and breaking it on purpose.

An injection is checked here first (the kind, its parameters against the kind's model in
`twin.fault_params`, the entity and what the kind targets, a start not in the past), then
sent as a `twin.inject_fault` Command on the bus to the twin (`commands.<control_source>`):
the API never reaches into a source. The answer is a 202: the twin checks the parameters
again with the same model, schedules the fault at its next step and its `fault.injected`
event follows (or a `command.rejected` event, if the twin finds something this check could
not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from fastapi import APIRouter, HTTPException

from rackwatch.api.auth import READ_ACCESS, AccessFirstRoute, ControlAccess
from rackwatch.api.deps import ApiContext, CtxDep
from rackwatch.api.lookup import entity_kind, unprocessable
from rackwatch.api.params import excerpt
from rackwatch.api.schemas import (
    CommandAcceptedOut,
    CommandOut,
    ErrorOut,
    FaultIn,
    FaultKindOut,
    FaultKindsOut,
    SeverityName,
)
from rackwatch.bus import subjects
from rackwatch.model import Command, CommandAction
from rackwatch.twin.fault_params import BadFaultParams
from rackwatch.twin.faults import FAULTS, FaultSpec, Target

router = APIRouter(tags=["twin"], route_class=AccessFirstRoute)

_KINDS_OF_TARGET: Mapping[Target, frozenset[str]] = {
    Target.FAN: frozenset({"fan"}),
    Target.SERVER: frozenset({"server"}),
    Target.SERVERS: frozenset({"server", "rack", "cluster"}),
    Target.PDU: frozenset({"pdu", "rack"}),
    Target.RACK: frozenset({"rack", "pdu"}),
    Target.CRAC: frozenset({"crac", "room"}),
}
"""Inventory kinds each fault target takes (sensor targets are checked on the series)."""


@router.get("/twin/faults", dependencies=[READ_ACCESS], responses={401: {"model": ErrorOut}})
async def get_fault_kinds() -> FaultKindsOut:
    """Every fault kind the twin can inject: what it does, what it targets, its parameters
    (defaults, bounds, and the JSON schema that `params` must match)."""
    return FaultKindsOut(kinds={kind: _kind_out(spec) for kind, spec in sorted(FAULTS.items())})


@router.post(
    "/twin/faults",
    status_code=202,
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
async def inject_fault(caller: ControlAccess, ctx: CtxDep, body: FaultIn) -> CommandAcceptedOut:
    """Inject a fault into the twin (twin only), now or at `start_ms`."""
    if ctx.control_source is None:
        raise HTTPException(503, "fault injection needs the twin, and this server runs none")
    spec = FAULTS.get(body.kind)
    if spec is None:
        raise unprocessable(
            f"kind: unknown fault kind {excerpt(body.kind)}; choose one of {sorted(FAULTS)}"
        )
    try:
        merged = spec.merge(body.params)
    except BadFaultParams as exc:
        said = (f"params.{name}: {why}" if name else f"params: {why}" for name, why in exc.problems)
        raise unprocessable(f"{'; '.join(said)} (fault {body.kind!r})") from None
    await _check_target(ctx, spec, body.entity, merged)
    newest = ctx.newest_sample_ms()
    if body.start_ms is not None and newest is not None and body.start_ms <= newest:
        raise unprocessable(
            f"start_ms: {body.start_ms} is not after the twin's newest sample ({newest}); "
            "leave it out to start at the next step"
        )
    params: dict[str, Any] = {"kind": body.kind, "params": dict(body.params or {})}
    if body.start_ms is not None:
        params["start_ms"] = body.start_ms
    command = Command(
        body.entity,
        CommandAction.TWIN_INJECT_FAULT,
        params,
        issued_by=caller.issued_by,
        ts=newest,
    )
    await ctx.bus.publish(subjects.commands(ctx.control_source), command)
    return CommandAcceptedOut(
        command=CommandOut(
            target=command.target,
            action=str(command.action),
            params=dict(command.params),
            issued_by=command.issued_by,
            ts_ms=command.ts,
        )
    )


async def _check_target(
    ctx: ApiContext, spec: FaultSpec, entity: str, params: Mapping[str, Any]
) -> None:
    """422 unless `entity` exists and is what the fault acts on."""
    kind = await entity_kind(ctx, entity)
    if spec.target is Target.SENSOR:
        metric = str(params["metric"])
        if ctx.registry.get(entity, metric) is None:
            raise unprocessable(
                f"entity: {entity!r} has no {metric!r} series for fault {spec.kind!r}; "
                "name an entity and a metric it reports (params.metric)"
            )
        return
    wanted = _KINDS_OF_TARGET.get(spec.target)
    if kind is not None and wanted is not None and kind not in wanted:
        raise unprocessable(
            f"entity: fault {spec.kind!r} acts on a {' or a '.join(sorted(wanted))}, and "
            f"{entity!r} is a {kind}"
        )


def _kind_out(spec: FaultSpec) -> FaultKindOut:
    return FaultKindOut(
        description=spec.description,
        target=str(spec.target),
        severity=cast(SeverityName, spec.severity.name.lower()),
        defaults=spec.defaults,
        bounds=spec.bounds,
        params_schema=spec.params.model_json_schema(),
    )
