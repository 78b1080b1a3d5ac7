"""GET /energy (kWh and cost over a range, per group, from the store) and GET /energy/live
(today's figures and the counters of the live accountant)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep
from rackwatch.api.energy_out import EnergyLiveOut, EnergyOut
from rackwatch.api.params import ParamError, check_entity_glob, excerpt, parse_time
from rackwatch.api.schemas import ErrorOut
from rackwatch.engine.energy import GROUPS, account

router = APIRouter(tags=["energy"], dependencies=[READ_ACCESS])

TIME_HELP = (
    "Epoch ms, ISO 8601, `now`, or a duration before now such as `-7d`. Default: today "
    "(from the site's local midnight to now)."
)


@router.get(
    "/energy",
    response_model=EnergyOut,
    responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def get_energy(
    ctx: CtxDep,
    from_: Annotated[str | None, Query(alias="from", description=TIME_HELP)] = None,
    to: Annotated[str | None, Query(description="As `from`; default `now`.")] = None,
    group: Annotated[
        str, Query(description="Rows per `server`, `rack`, `room`, or one for the `site`.")
    ] = "site",
    entity: Annotated[str, Query(description="Entity glob over the servers, fans, PDUs.")] = "**",
) -> Response:
    """Measured and gap-filled kWh, cost at the tariff, facility energy and PUE, fan energy
    and what the fan policy saved against always-high (docs/ENERGY.md). Whole minutes:
    both ends are rounded down. Computed in a worker thread, in SQL over the rollup tiers."""
    entity = check_entity_glob(entity)
    if group not in GROUPS:
        raise ParamError(f"group must be one of {', '.join(GROUPS)}, got {excerpt(group)}")
    energy = ctx.energy
    now = ctx.now_ms()
    # the future has no readings yet: it would only count as a gap
    end = now if to is None else min(parse_time(to, now_ms=now, name="to"), now)
    if from_ is None:
        start = energy.tariff.day_bounds(end - 1 if end > 0 else 0)[0]
    else:
        start = parse_time(from_, now_ms=now, name="from")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end}) and now ({now})")

    def run() -> dict[str, Any]:
        report = account(
            ctx.store,
            start,
            end,
            group=group,
            tariff=energy.tariff,
            pue=energy.pue,
            entity=entity,
        )
        return report.to_dict()

    try:
        body = await run_in_threadpool(run)
    except ValueError as exc:  # a range too long, said by the accounting
        raise ParamError(str(exc)) from None
    return JSONResponse(body)


@router.get(
    "/energy/live",
    response_model=EnergyLiveOut,
    response_model_exclude_none=False,
    responses={503: {"model": ErrorOut}},
)
async def get_energy_live(
    ctx: CtxDep,
    detail: Annotated[
        bool, Query(description="Add the joules since start of every server, rack and room.")
    ] = False,
) -> Response:
    """Today's IT kWh and cost, facility kWh and cost, running PUE, fan kWh, in the site's time
    zone, and the joules counted since the server started (the `/metrics` counters)."""
    live = ctx.energy.live
    if live is None:
        raise HTTPException(503, "the live energy accountant is not running on this server")
    return JSONResponse(live.totals().to_dict(detail=detail))
