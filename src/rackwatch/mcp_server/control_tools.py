"""Control tools: `set_fan_mode`, `set_fan_level` (POST /fans/mode, /fans/level),
`set_maintenance` (POST /maintenance, DELETE /maintenance/{entity}), `acknowledge_alert`
(POST /alerts/ack), `inject_fault` (POST /twin/faults) and `list_fault_kinds` (GET
/twin/faults, which only inject_fault needs).

They are listed only to a caller with a control token (`server.py`); called without one, the
API refuses them (401/403) and the tool says how to get one. What they cause is stamped with
the token's name in the events, as over REST.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from rackwatch.mcp_server import args, shaping
from rackwatch.mcp_server.api_client import path_part
from rackwatch.mcp_server.args import EntityPath
from rackwatch.mcp_server.links import Link, request_of
from rackwatch.mcp_server.telemetry_tools import READ_ONLY
from rackwatch.model.times import MAX_TS_MS
from rackwatch.twin.faults import FAULTS

CHANGES: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
BREAKS: Final = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)
MAX_ACK_IDS: Final = 100
MAX_FAULT_PARAMS: Final = 16
FaultParam = bool | int | float | str | None


def add_control_tools(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=CHANGES)
    async def set_fan_mode(
        ctx: Context,
        entity: Annotated[EntityPath, Field(description="A fan, server, rack or cluster.")],
        mode: Annotated[
            Literal["auto", "manual"],
            Field(description="auto: the controller drives the fans; manual: they stay put."),
        ],
    ) -> CallToolResult:
        """Put every fan at or under an entity in auto mode (the fan controller sets their
        levels from the temperatures) or manual mode. Needs a control token."""
        body = {"entity": args.path(entity), "mode": mode}
        async with link.api(request_of(ctx)) as api:
            return shaping.result(await api.post("/fans/mode", body))

    @server.tool(annotations=CHANGES)
    async def set_fan_level(
        ctx: Context,
        entity: Annotated[EntityPath, Field(description="A fan, or a server (all its fans).")],
        level: Annotated[
            Annotated[int, Field(ge=0, le=3)] | Literal["off", "low", "medium", "high"],
            Field(description="0..3 or off, low, medium, high."),
        ],
    ) -> CallToolResult:
        """Set a fan, or every fan of a server, to a level; the fans go to manual mode (hand
        them back with set_fan_mode auto). The twin applies it at its next step. Needs a
        control token."""
        body = {"entity": args.path(entity), "level": level}
        async with link.api(request_of(ctx)) as api:
            return shaping.result(await api.post("/fans/level", body))

    @server.tool(annotations=CHANGES)
    async def set_maintenance(
        ctx: Context,
        entity: EntityPath,
        on: Annotated[bool, Field(description="true: start maintenance; false: end it.")],
        reason: Annotated[str, Field(max_length=500, description="Why (kept with it).")] = "",
    ) -> CallToolResult:
        """Start or end maintenance of an entity and everything under it: its alerts are
        still recorded but nobody is notified, and its state is MAINTENANCE. End it on the
        entity it was started on. Needs a control token."""
        name = args.path(entity)
        async with link.api(request_of(ctx)) as api:
            if on:
                answer = await api.post("/maintenance", {"entity": name, "reason": reason})
            else:
                answer = await api.delete(f"/maintenance/{path_part(name)}")
        return shaping.result(answer)

    @server.tool(annotations=CHANGES)
    async def acknowledge_alert(
        ctx: Context,
        alert_ids: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=64)]],
            Field(
                min_length=1,
                max_length=MAX_ACK_IDS,
                description="Alert ids from list_alerts.",
            ),
        ],
    ) -> CallToolResult:
        """Acknowledge open alerts (someone is on it): they stay open until resolved but are
        shown as acknowledged, by this token's name. Unknown ids come back in not_found.
        Needs a control token."""
        async with link.api(request_of(ctx)) as api:
            return shaping.result(await api.post("/alerts/ack", {"ids": alert_ids}))

    @server.tool(annotations=READ_ONLY)
    async def list_fault_kinds(ctx: Context) -> CallToolResult:
        """The faults inject_fault can cause in the simulated room: for each kind what it
        does, what it targets (fan, server, sensor, pdu, rack, crac) and its parameters
        with their defaults and bounds."""
        async with link.api(request_of(ctx)) as api:
            answer = await api.get("/twin/faults")
        kinds = {
            kind: {k: spec.get(k) for k in ("description", "target", "defaults", "bounds")}
            for kind, spec in answer.get("kinds", {}).items()
        }
        return shaping.result({"kinds": kinds})

    @server.tool(annotations=BREAKS, description=_inject_description())
    async def inject_fault(
        ctx: Context,
        kind: Annotated[str, Field(min_length=1, max_length=64, description="The fault kind.")],
        entity: Annotated[EntityPath, Field(description="What it acts on (see the kind).")],
        params: Annotated[
            dict[str, FaultParam] | None,
            Field(description="Overrides of the kind's defaults (list_fault_kinds)."),
        ] = None,
        start_ms: Annotated[
            int | None,
            Field(ge=0, le=MAX_TS_MS, description="When it starts (epoch ms); default now."),
        ] = None,
    ) -> CallToolResult:
        if kind not in FAULTS:
            raise ToolError(f"unknown fault kind {kind[:64]!r}; kinds: {', '.join(FAULTS)}")
        if params is not None and len(params) > MAX_FAULT_PARAMS:
            raise ToolError(f"at most {MAX_FAULT_PARAMS} params (list_fault_kinds has them)")
        body: dict[str, Any] = {"kind": kind, "entity": args.path(entity)}
        if params is not None:
            body["params"] = params
        if start_ms is not None:
            body["start_ms"] = start_ms
        async with link.api(request_of(ctx)) as api:
            return shaping.result(await api.post("/twin/faults", body))


def _inject_description() -> str:
    kinds = "; ".join(f"{kind} ({spec.target.value})" for kind, spec in FAULTS.items())
    return (
        "Inject a fault into the simulated room (the twin; real machines are never touched), "
        "to test the alerts, the diagnosis and the fan control: a fault.injected event "
        f"follows at the twin's next step. Kinds and what they act on: {kinds}. Parameters "
        "and bounds: list_fault_kinds. Needs a control token."
    )


CONTROL_TOOLS: Final = frozenset(
    {
        "set_fan_mode",
        "set_fan_level",
        "set_maintenance",
        "acknowledge_alert",
        "list_fault_kinds",
        "inject_fault",
    }
)
"""The tools listed only to a caller with a control token."""
