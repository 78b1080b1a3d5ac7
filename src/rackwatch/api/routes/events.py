"""GET /events: alerts, faults, commands... by time range, entity and kind, newest first."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep
from rackwatch.api.params import ParamError, check_entity_glob, excerpt, parse_time
from rackwatch.api.routes.series import TIME_HELP
from rackwatch.api.schemas import ErrorOut, EventOut, EventsOut, SeverityName
from rackwatch.model import Severity

router = APIRouter(tags=["events"], dependencies=[READ_ACCESS])

_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
MAX_KINDS = 50


@router.get("/events", responses={400: {"model": ErrorOut}})
async def get_events(
    ctx: CtxDep,
    from_: Annotated[str, Query(alias="from", description=TIME_HELP)] = "-24h",
    to: Annotated[str, Query(description=TIME_HELP)] = "now",
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    kind: Annotated[
        list[str] | None, Query(description="Dotted event kinds, e.g. fault.injected.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 500,
) -> EventsOut:
    """Events overlapping [from, to) (a span counts while it lasts), newest first."""
    entity = check_entity_glob(entity)
    for k in kind or ():
        if not _KIND.match(k):
            raise ParamError(
                f"bad event kind {excerpt(k)}: kinds are dotted names like fault.injected"
            )
    if kind is not None and len(kind) > MAX_KINDS:
        raise ParamError(f"at most {MAX_KINDS} kinds, got {len(kind)}")
    now = ctx.now_ms()
    start = parse_time(from_, now_ms=now, name="from")
    end = parse_time(to, now_ms=now, name="to")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end})")
    newest = await run_in_threadpool(ctx.store.events, start, end, entity, kind, limit)
    return EventsOut(
        events=[
            EventOut(
                ts_ms=e.ts,
                end_ts_ms=e.end_ts,
                kind=str(e.kind),
                entity=e.entity,
                severity=_SEVERITY[Severity(e.severity)],
                attributes=dict(e.attributes),
            )
            for e in newest
        ]
    )


_SEVERITY: dict[Severity, SeverityName] = {
    Severity.INFO: "info",
    Severity.WARNING: "warning",
    Severity.CRITICAL: "critical",
}
