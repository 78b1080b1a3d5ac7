"""GET /alerts (optionally grouped by rule), GET /alerts/history (past alerts from the store,
filtered and paged), POST /alerts/{id}/ack and POST /alerts/ack (many at once).

GET /alerts is the alert engine's memory: open alerts, and with `state=all` the recently
resolved ones (on a front end, `rackwatch serve`, the same folded from the alert workers'
events: engine/alerts/site.py). The history is rebuilt from the `alert.*` events in the store
(engine/alerts/views.py), so it reaches back past a restart; the engine's fresher view is laid
over it when the engine runs here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS, AccessFirstRoute, ControlAccess
from rackwatch.api.deps import AlertAckDep, AlertReadoutDep, ApiContext, CtxDep
from rackwatch.api.params import MAX_TS_MS, ParamError, check_entity_glob, excerpt, parse_time
from rackwatch.api.routes.series import TIME_HELP
from rackwatch.api.schemas import (
    MAX_GROUP_ENTITIES,
    AlertAckOut,
    AlertGroupOut,
    AlertHistoryOut,
    AlertOut,
    AlertsAckIn,
    AlertsAckOut,
    AlertsOut,
    AlertStatusName,
    ErrorOut,
)
from rackwatch.engine.alerts.lifecycle import AlertNotFound
from rackwatch.engine.alerts.site import AckTimeout, SiteAlerts
from rackwatch.engine.alerts.views import (
    HistoryTooLarge,
    group_by_rule,
    newest_fired_first,
    overlaps,
    read_history,
    with_engine,
)
from rackwatch.errors import ConfigError
from rackwatch.model.entity import matches
from rackwatch.tokens import LEGACY_BY, relabel

router = APIRouter(tags=["alerts"], route_class=AccessFirstRoute)

_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_RULES = 50
MAX_HISTORY_LIMIT = 1000
MAX_HISTORY_OFFSET = 1_000_000
MAX_HISTORY_DAYS = 92
"""The history reads alert events from `from` up to now: at most this many days of them."""
_DAY_MS = 86_400_000
_LATE_MS = 60_000
"""Events may be stamped a little past the API's "now" (an acknowledgement takes the alert
engine's newest sample, which the live state may not have yet): read this far past it."""


@router.get(
    "/alerts",
    dependencies=[READ_ACCESS],
    responses={400: {"model": ErrorOut}, 401: {}},
    response_model_exclude_unset=True,
)
async def get_alerts(
    alerts: AlertReadoutDep,
    state: Annotated[
        Literal["active", "all"],
        Query(description="`active`: firing or acknowledged; `all`: also recently resolved."),
    ] = "active",
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    group_by: Annotated[
        Literal["rule"] | None,
        Query(description="`rule`: also `groups`, one per rule (count, highest level ...)."),
    ] = None,
) -> AlertsOut:
    """Open alerts, oldest first; with `state=all` also those resolved that the engine still
    keeps in its history (`[alerts] history` occurrences). With `group_by=rule` the answer
    also has `groups`: per rule, its highest level, how many, the first entities and the
    oldest fire time (a room-wide fault is one group of 15 alerts, not 15 lines)."""
    entity = check_entity_glob(entity)
    found: dict[str, dict[str, Any]] = {}
    if state == "all":
        for occurrence in alerts.recent_alerts(-1):  # oldest first: the newest state wins
            found[occurrence["id"]] = occurrence
    for alert in alerts.open_alert_dicts():
        found[alert["id"]] = alert
    chosen = sorted(
        (a for a in found.values() if entity == "**" or matches(a["entity"], entity)),
        key=lambda a: (a["fired_ts_ms"], a["rule"], a["entity"]),
    )
    listed = [alert_out(a) for a in chosen]
    if group_by is None:
        return AlertsOut(alerts=listed)  # `groups` unset: left out of the answer
    groups = group_by_rule(chosen, MAX_GROUP_ENTITIES)
    return AlertsOut(alerts=listed, groups=[AlertGroupOut.model_validate(g) for g in groups])


@router.get(
    "/alerts/history",
    dependencies=[READ_ACCESS],
    responses={400: {"model": ErrorOut}, 401: {}, 503: {"model": ErrorOut}},
)
async def get_alert_history(
    ctx: CtxDep,
    from_: Annotated[str, Query(alias="from", description=TIME_HELP)] = "-24h",
    to: Annotated[str, Query(description=TIME_HELP)] = "now",
    entity: Annotated[str, Query(description="Entity glob: `*` one segment, `**` any.")] = "**",
    rule: Annotated[
        list[str] | None, Query(description="Rule names (repeatable), e.g. fan-stopped.")
    ] = None,
    level: Annotated[
        list[Literal["WARNING", "CRITICAL"]] | None,
        Query(description="Levels (repeatable): the alert's level at its last change."),
    ] = None,
    status: Annotated[
        list[AlertStatusName] | None,
        Query(description="Statuses now (repeatable): firing, acknowledged, resolved."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="Alerts in this page.")
    ] = 100,
    offset: Annotated[
        int, Query(ge=0, le=MAX_HISTORY_OFFSET, description="Alerts skipped before it.")
    ] = 0,
) -> AlertHistoryOut:
    """Past alerts: every alert open at some time in [from, to), with its status now, newest
    fired first, a page at a time (`total` counts them all). Rebuilt from the `alert.*`
    events in the store (it survives restarts) from `from` up to now, at most
    92 days of them; the alert engine's fresher view is laid over it when it runs here."""
    entity = check_entity_glob(entity)
    rules = _rule_names(rule)
    now = ctx.now_ms()
    start = parse_time(from_, now_ms=now, name="from")
    end = parse_time(to, now_ms=now, name="to")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end})")
    read_end = min(MAX_TS_MS, now + _LATE_MS)
    if now - start > MAX_HISTORY_DAYS * _DAY_MS:
        raise ParamError(
            f"from ({start}) is more than {MAX_HISTORY_DAYS} days before now ({now}): the "
            f"history reads alert events from `from` up to now; ask for a later from"
        )
    failure_rules = frozenset() if ctx.alerts is None else ctx.alerts.failure_rules()
    try:
        history = await run_in_threadpool(
            read_history, ctx.store, start, read_end, entity, failure_rules=failure_rules
        )
    except HistoryTooLarge as exc:
        raise ParamError(str(exc)) from None
    found = history.alerts
    if ctx.alerts is not None:  # on the event loop: the engine is not thread-safe
        known: dict[str, dict[str, Any]] = {}
        for occurrence in ctx.alerts.recent_alerts(-1):
            known[occurrence["id"]] = occurrence
        active = ctx.alerts.active_alerts()
        known.update((a.id, a.as_dict()) for a in active)
        found = with_engine(found, known, {a.id for a in active}, entity)
    chosen = newest_fired_first(
        a
        for a in found.values()
        if overlaps(a, start, end)
        and (rules is None or a["rule"] in rules)
        and (level is None or a["level"] in level)
        and (status is None or a["status"] in status)
    )
    page = [dict(a) for a in chosen[offset : offset + limit]]
    await _name_legacy_tokens(ctx, page)
    return AlertHistoryOut(alerts=[alert_out(a) for a in page], total=len(chosen))


def _rule_names(names: list[str] | None) -> frozenset[str] | None:
    if names is None:
        return None
    if len(names) > MAX_RULES:
        raise ParamError(f"rule: at most {MAX_RULES} rule names, got {len(names)}")
    for name in names:
        if not _RULE.match(name):
            raise ParamError(
                f"rule {excerpt(name)} is not a rule name: 1 to 64 letters, digits, "
                "'_', '.' or '-' (e.g. fan-stopped)"
            )
    return frozenset(names)


async def _name_legacy_tokens(ctx: ApiContext, page: list[dict[str, Any]]) -> None:
    """Acknowledgements stored before records named their token read `token:<id>`: show
    the token's name with its id when the token still exists (one read of the token file,
    only when the page has such an acknowledgement)."""
    legacy = [a for a in page if LEGACY_BY.match(a.get("acknowledged_by") or "")]
    if not legacy or ctx.tokens is None:
        return
    try:
        names = await run_in_threadpool(ctx.tokens.names)
    except ConfigError:
        return  # a broken token file costs the names, not the history
    for alert in legacy:
        alert["acknowledged_by"] = relabel(alert["acknowledged_by"], names)


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 504)}
"""An acknowledgement's errors: no token, a read token, no confirmation from the workers."""


@router.post(
    "/alerts/ack",
    responses={**_ERRORS, 400: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def acknowledge_alerts(
    caller: ControlAccess, alerts: AlertAckDep, body: AlertsAckIn
) -> AlertsAckOut:
    """Acknowledge many open alerts at once (a room-wide fault: one call, not 15), each as
    POST /alerts/{id}/ack does: one `alert.acknowledged` event per alert not acknowledged
    before. Ids of no open alert come back in `not_found`; a repeated id counts once. On a
    front end (`rackwatch serve`) the alerts workers acknowledge, and the answer waits for
    their confirmation (504 after 5 s without it)."""
    if isinstance(alerts, SiteAlerts):
        done, not_found = await _through_workers(alerts, body.ids, caller.issued_by)
        return AlertsAckOut(acknowledged=[a["id"] for a in done], not_found=not_found)
    result = await alerts.acknowledge_many(body.ids, caller.issued_by)
    return AlertsAckOut(
        acknowledged=[a.id for a in result.acknowledged], not_found=result.not_found
    )


async def _through_workers(
    site: SiteAlerts, ids: list[str], by: str
) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        return await site.acknowledge_many(ids, by)
    except AckTimeout as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from None


@router.post("/alerts/{alert_id}/ack", responses={**_ERRORS, 404: {"model": ErrorOut}})
async def acknowledge_alert(
    caller: ControlAccess, alerts: AlertAckDep, alert_id: str
) -> AlertAckOut:
    """Acknowledge an open alert (again: no change); 404 if no open alert has this id."""
    if isinstance(alerts, SiteAlerts):
        done, _missing = await _through_workers(alerts, [alert_id], caller.issued_by)
        if not done:
            raise HTTPException(
                status_code=404,
                detail=f"no open alert with id {alert_id!r}: it may have resolved; "
                "list the open ones and use one of their ids",
            )
        return AlertAckOut(alert=alert_out(done[0]))
    try:
        alert = await alerts.acknowledge(alert_id, caller.issued_by)
    except AlertNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return AlertAckOut(alert=alert_out(alert.as_dict()))


def alert_out(alert: dict[str, Any]) -> AlertOut:
    """An engine alert dict as the API's shape (pydantic writes NaN as null)."""
    return AlertOut.model_validate(alert)
