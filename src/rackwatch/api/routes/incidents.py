"""GET /incidents: the diagnosed incidents whose life overlaps a range, from the stored
`incident.*` events (engine/diagnosis/incident.py: each event carries the whole incident, so
the newest event of an id is its state).

The glob matches an incident's scope entity (the event's entity) or any of its devices, so
`c01/r01/s03` finds the rack and room incidents that include that server. An incident opened
before `from` is found from the newest `MAX_EARLIER_EVENTS` incident events of the
`LOOKBACK_MS` before it; one opened earlier still and never changed since is not listed.
Answers from the store alone, so it works without the intelligence consumer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import ApiContext, CtxDep
from rackwatch.api.params import ParamError, check_entity_glob, time_range
from rackwatch.api.routes.health import EntityQ, FromQ, ToQ
from rackwatch.api.schemas import ErrorOut, IncidentAnomalyOut, IncidentOut, IncidentsOut
from rackwatch.model import Event, EventKind
from rackwatch.model.entity import compile_pattern

router = APIRouter(tags=["health"], dependencies=[READ_ACCESS])

KINDS = (
    str(EventKind.INCIDENT_OPENED),
    str(EventKind.INCIDENT_UPDATED),
    str(EventKind.INCIDENT_CLOSED),
)
MAX_EVENTS = 50_000
"""Incident events in [from, now] read at most; more is a 400 asking for a narrower range."""
LOOKBACK_MS = 30 * 86_400_000
MAX_EARLIER_EVENTS = 10_000
"""Incidents still open at `from` are found among this many events before it, newest first."""
_ORDER = {kind: i for i, kind in enumerate(KINDS)}  # same instant: closed after updated...


def _range(ctx: ApiContext, from_: str, to: str) -> tuple[int, int, int]:
    now = ctx.now_ms()
    return (now, *time_range(from_, to, now_ms=now))


@router.get(
    "/incidents",
    response_model=IncidentsOut,
    responses={400: {"model": ErrorOut}},
)
async def get_incidents(
    ctx: CtxDep,
    entity: EntityQ = "**",
    from_: FromQ = "-24h",
    to: ToQ = "now",
    open_: Annotated[
        bool, Query(alias="open", description="Only the incidents not closed.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 200,
) -> Response:
    """Incidents whose life overlaps [from, to) with the scope entity or a device matching
    the glob, each in its newest state: open ones first, then closed ones, newest first."""
    entity = check_entity_glob(entity)
    now, start, end = _range(ctx, from_, to)
    # events after `to` still close (or widen) incidents that started before it
    read_to = max(end, now + 1)
    recent = await run_in_threadpool(ctx.store.events, start, read_to, "**", KINDS, MAX_EVENTS + 1)
    if len(recent) > MAX_EVENTS:
        raise ParamError(
            f"more than {MAX_EVENTS:,} incident events from {start} to now: narrow the range "
            "(a later `from`)"
        )
    earlier = await run_in_threadpool(
        ctx.store.events, max(0, start - LOOKBACK_MS), start, "**", KINDS, MAX_EARLIER_EVENTS
    )

    def encoded() -> bytes:
        # a busy room's month of incidents: folded and encoded off the event loop
        found = fold([*earlier, *recent])
        pattern = compile_pattern(entity)
        rows = [
            row
            for row in found
            if (row.is_open or not open_)
            and _overlaps(row, start, end)
            and (pattern.match(row.entity) or any(pattern.match(d) for d in row.devices))
        ]
        rows.sort(key=_order)
        return (
            IncidentsOut(
                now_ms=now,
                from_ms=start,
                to_ms=end,
                n_open=sum(r.is_open for r in rows),
                incidents=rows[:limit],
            )
            .model_dump_json()
            .encode()
        )

    return Response(await run_in_threadpool(encoded), media_type="application/json")


@dataclass
class _Life:
    latest: Event
    opened_ts: int | None = None
    closed_ts: int | None = None


def fold(events: Sequence[Event]) -> list[IncidentOut]:
    """Each incident id's newest state, with when it was opened, last changed and closed."""
    lives: dict[str, _Life] = {}
    ordered = sorted(events, key=lambda e: (e.ts, _ORDER.get(str(e.kind), 0)))
    for event in ordered:
        a = event.attributes
        key = str(a.get("id") or f"{event.entity}@{a.get('start', event.ts)}")
        life = lives.get(key)
        if life is None:
            life = lives[key] = _Life(event)
        life.latest = event
        if event.kind == EventKind.INCIDENT_OPENED and life.opened_ts is None:
            life.opened_ts = event.ts
        if event.kind == EventKind.INCIDENT_CLOSED:
            life.closed_ts = event.ts
        else:
            life.closed_ts = None  # updated after a close: it lives again
    return [_incident(key, life) for key, life in lives.items()]


def _incident(key: str, life: _Life) -> IncidentOut:
    event = life.latest
    a = event.attributes
    end = _int(a.get("end"))
    if life.closed_ts is not None and end is None:
        end = life.closed_ts
    return IncidentOut(
        id=key,
        entity=event.entity,
        scope=str(a.get("scope", "server")),
        nature=str(a.get("nature", "real")),
        cause=str(a.get("cause", "unknown")),
        action=str(a.get("action", "")),
        devices=_strings(a.get("devices")),
        anomalies=[_anomaly(m) for m in _list(a.get("anomalies")) if isinstance(m, Mapping)],
        n_anomalies=_int(a.get("n_anomalies")) or 0,
        evidence=_strings(a.get("evidence")),
        start=_int(a.get("start")),
        end=end,
        is_open=life.closed_ts is None,
        opened_ts=life.opened_ts,
        updated_ts=event.ts,
        closed_ts=life.closed_ts,
    )


def _anomaly(m: Mapping[str, Any]) -> IncidentAnomalyOut:
    return IncidentAnomalyOut(
        entity=str(m.get("entity", "")),
        metric=str(m.get("metric", "")),
        detector=str(m.get("detector", "")),
        start=_int(m.get("start")),
    )


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _list(value)]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value)


def _overlaps(row: IncidentOut, start: int, end: int) -> bool:
    """Its life, from its first anomaly (or its opening) to its close, meets [start, end)."""
    began = min(t for t in (row.start, row.opened_ts, row.updated_ts) if t is not None)
    return began < end and (row.closed_ts is None or row.closed_ts >= start)


def _order(row: IncidentOut) -> tuple[bool, int, str]:
    if row.is_open:
        return (False, -(row.start if row.start is not None else row.updated_ts), row.id)
    return (True, -(row.closed_ts or row.updated_ts), row.id)
