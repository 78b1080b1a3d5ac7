"""Read tools over what is wrong: `list_alerts` (GET /alerts), `list_incidents` (GET
/incidents) and `explain_health` (GET /health/now, /health, /predictions, /anomalies and the
device's open incidents, put together for one entity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from rackwatch.mcp_server import args, shaping
from rackwatch.mcp_server.args import EntityGlob, EntityPath, TimeText
from rackwatch.mcp_server.links import Link, request_of
from rackwatch.mcp_server.telemetry_tools import READ_ONLY

_ALERT_FIELDS: Final = (
    "id",
    "entity",
    "rule",
    "level",
    "status",
    "metric",
    "value",
    "threshold",
    "unit",
    "message",
    "fired_ts_ms",
    "acknowledged_by",
    "resolved_ts_ms",
    "is_failure",
    "is_suppressed",
)
_LEVEL_ORDER: Final = {"CRITICAL": 0, "WARNING": 1}
_STATUS_ORDER: Final = {"firing": 0, "acknowledged": 1, "resolved": 2}
MAX_REASONS: Final = 20
MAX_LISTED: Final = 10


def add_health_tools(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_alerts(
        ctx: Context,
        state: Annotated[
            Literal["active", "all"],
            Field(description="active: firing or acknowledged; all: also recently resolved."),
        ] = "active",
        entity: EntityGlob = "**",
        limit: Annotated[int, Field(ge=1, le=500, description="Most alerts listed.")] = 50,
    ) -> CallToolResult:
        """The alerts of the alert engine: critical before warning, firing before
        acknowledged before resolved, newest first; each with its id (for
        acknowledge_alert), entity, rule, metric, value and threshold. Suppressed alerts are
        on devices in maintenance (nobody is notified)."""
        params = [("state", state), ("entity", args.glob(entity))]
        async with link.api(request_of(ctx)) as api:
            answer = await api.get("/alerts", params)
        alerts = sorted(answer.get("alerts", []), key=_alert_order)
        rows = [shaping.drop_empty({k: a.get(k) for k in _ALERT_FIELDS}) for a in alerts]
        shown, note = shaping.first(rows, limit, "alerts", "narrow entity, or raise limit")
        payload: dict[str, Any] = {
            "n_alerts": len(rows),
            "by_level": _count(rows, "level"),
            "alerts": shown,
        }
        if note is not None:
            payload["note"] = note
        return shaping.result(payload)

    @server.tool(annotations=READ_ONLY)
    async def list_incidents(
        ctx: Context,
        entity: EntityGlob = "**",
        open_only: Annotated[bool, Field(description="Only incidents not closed yet.")] = False,
        since: TimeText = "-24h",
        until: TimeText = "now",
        limit: Annotated[int, Field(ge=1, le=200, description="Most incidents listed.")] = 20,
    ) -> CallToolResult:
        """Incidents: anomalies that one cause explains, grouped by the diagnosis, with
        their scope (server, rack, room), nature (real or sensor), cause (fan_failure,
        cooling, power_cap, sensor_stuck...), the recommended action and the evidence.
        Open ones first. entity matches the scope or any device involved."""
        params = [
            ("entity", args.glob(entity)),
            ("open", "true" if open_only else "false"),
            ("from", args.checked_time(since, "since")),
            ("to", args.checked_time(until, "until")),
            ("limit", str(limit)),
        ]
        async with link.api(request_of(ctx)) as api:
            answer = await api.get("/incidents", params)
        incidents = [_incident(i) for i in answer.get("incidents", [])]
        return shaping.result(
            {"n_open": answer.get("n_open"), "n_listed": len(incidents), "incidents": incidents}
        )

    @server.tool(annotations=READ_ONLY)
    async def explain_health(ctx: Context, entity: EntityPath) -> CallToolResult:
        """Why a device (or a rack, cluster, room) has the health it has: its score 0-100
        and criticity (low, medium, high, critical) now and predicted in an hour, the
        reasons with their penalties (alerts, states, anomalies, forecasts), the next
        predicted failure, its hourly score over 24 h, fan wear predictions, open anomalies
        and open incidents with the recommended action."""
        name = args.path(entity)
        under = f"{name}/**"
        async with link.api(request_of(ctx)) as api:
            now = await api.get_optional("/health/now", [("entity", name)])
            trend = await api.get("/health", [("entity", name), ("from", "-24h"), ("step", "1h")])
            predictions = await api.get("/predictions", [("entity", under)])
            anomalies = await api.get(
                "/anomalies", [("entity", under), ("from", "-24h"), ("limit", "50")]
            )
            incidents = await api.get(
                "/incidents", [("entity", name), ("open", "true"), ("limit", str(MAX_LISTED))]
            )
        health = None if now is None else now.get("entities", {}).get(name)
        history = next((e for e in trend.get("entities", []) if e.get("entity") == name), None)
        if health is None and history is None:
            raise ToolError(
                f"no health is known for {name}: check the path with list_devices (health is "
                "scored for devices and the racks, clusters and room they roll up into)"
            )
        payload: dict[str, Any] = {"entity": name}
        if health is not None:
            payload.update(_health_now(health, now or {}))
        elif now is None:
            payload["note"] = "the intelligence is not running on this server: no score now"
        if history is not None:
            payload["last_24h"] = {
                "step_ms": trend.get("bucket_ms"),
                "worst_criticity": history.get("worst_criticity"),
                "ts": history.get("ts"),
                "score": history.get("score"),
                "low": history.get("low"),
            }
        payload["predictions"] = [
            shaping.drop_empty(p) for p in predictions.get("predictions", [])[:MAX_LISTED]
        ]
        open_anomalies = [a for a in anomalies.get("anomalies", []) if a.get("is_open")]
        payload["open_anomalies"] = [
            {k: a.get(k) for k in ("entity", "metric", "detector", "start_ms", "score")}
            for a in open_anomalies[:MAX_LISTED]
        ]
        payload["n_anomalies_24h"] = len(anomalies.get("anomalies", []))
        payload["open_incidents"] = [_incident(i) for i in incidents.get("incidents", [])]
        return shaping.result(payload)


def _alert_order(alert: Mapping[str, Any]) -> tuple[int, int, int]:
    return (
        _LEVEL_ORDER.get(str(alert.get("level")), 2),
        _STATUS_ORDER.get(str(alert.get("status")), 3),
        -int(alert.get("fired_ts_ms") or 0),
    )


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get(key))] = counts.get(str(row.get(key)), 0) + 1
    return counts


def _incident(incident: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "entity", "scope", "nature", "cause", "action", "start", "end", "is_open")
    out = {k: incident.get(k) for k in keys}
    out["devices"] = (incident.get("devices") or [])[:MAX_LISTED]
    out["n_anomalies"] = incident.get("n_anomalies")
    out["anomalies"] = (incident.get("anomalies") or [])[:5]
    out["evidence"] = (incident.get("evidence") or [])[:5]
    return out


def _health_now(health: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    reasons = sorted(health.get("reasons") or [], key=lambda r: -float(r.get("penalty") or 0))
    out = {
        "score": health.get("score"),
        "criticity": health.get("criticity"),
        "predicted_score": health.get("predicted_score"),
        "predicted_criticity": health.get("predicted_criticity"),
        "horizon_s": now.get("horizon_s"),
        "next_failure": health.get("next_failure"),
        "n_members": health.get("n_members"),
        "reasons": reasons[:MAX_REASONS],
    }
    if len(reasons) > MAX_REASONS:
        out["reasons_note"] = f"the {MAX_REASONS} largest of {len(reasons)} reasons"
    if health.get("app"):
        out["app"] = health["app"]
    return out
