"""Read tools for planning: `get_energy` (GET /energy), `list_reports` and `get_report` (GET
/reports, /reports/{name}) and `recommend_server` (GET /recommend, /recommend/placement).

Their answers are passed on as the routes give them, only bounded (`shaping.bounded`): the
tools follow the routes' shapes instead of copying them. A server without one of these routes
(an older rackwatch) gives a tool error that says so (`api_client`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult
from pydantic import Field

from rackwatch.engine.recommend.placement import MAX_CORES, MAX_GPU_MEMORY_GB, MAX_GPUS
from rackwatch.mcp_server import args, shaping
from rackwatch.mcp_server.api_client import path_part
from rackwatch.mcp_server.args import TimeText
from rackwatch.mcp_server.links import Link, request_of
from rackwatch.mcp_server.telemetry_tools import READ_ONLY

REPORT_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_REPORT_CHARS: Final = 40_000


def add_planning_tools(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_energy(
        ctx: Context,
        since: TimeText = "-24h",
        until: TimeText = "now",
        group: Annotated[
            str | None,
            Field(
                pattern=r"^[a-z_]{1,32}$",
                description="How to group the energy, e.g. server, rack or cluster.",
            ),
        ] = None,
    ) -> CallToolResult:
        """Energy used over a time range (kWh), with the cost and PUE where the server
        computes them, in total and per group."""
        params = [
            ("from", args.checked_time(since, "since")),
            ("to", args.checked_time(until, "until")),
        ]
        if group is not None:
            params.append(("group", group))
        async with link.api(request_of(ctx)) as api:
            answer = await api.get("/energy", params)
        return shaping.result(_as_object(answer))

    @server.tool(annotations=READ_ONLY)
    async def list_reports(ctx: Context) -> CallToolResult:
        """The reports this server can produce or has produced (energy, availability...),
        by name; read one with get_report."""
        async with link.api(request_of(ctx)) as api:
            answer = await api.get("/reports")
        return shaping.result(_as_object(answer))

    @server.tool(annotations=READ_ONLY)
    async def get_report(
        ctx: Context,
        name: Annotated[
            str, Field(pattern=REPORT_NAME, description="A report's name from list_reports.")
        ],
    ) -> CallToolResult:
        """One report, by its name from list_reports."""
        async with link.api(request_of(ctx)) as api:
            answer = await api.get(f"/reports/{path_part(name)}")
        if isinstance(answer, str):
            cut = len(answer) > MAX_REPORT_CHARS
            text = answer[:MAX_REPORT_CHARS]
            payload: dict[str, Any] = {"name": name, "text": text}
            if cut:
                payload["note"] = f"the report is cut to its first {MAX_REPORT_CHARS} characters"
            return shaping.result(payload)
        return shaping.result(_as_object(answer))

    @server.tool(annotations=READ_ONLY)
    async def recommend_server(
        ctx: Context,
        gpus: Annotated[
            int | None, Field(ge=1, le=MAX_GPUS, description="GPUs the workload needs.")
        ] = None,
        gpu_memory_gb: Annotated[
            float | None,
            Field(
                gt=0,
                le=MAX_GPU_MEMORY_GB,
                allow_inf_nan=False,
                description="GPU memory it needs per GPU, in GB.",
            ),
        ] = None,
        cores: Annotated[
            int | None, Field(ge=1, le=MAX_CORES, description="CPU cores it needs.")
        ] = None,
    ) -> CallToolResult:
        """Which server to use. Without arguments: the servers ranked for new work (health,
        headroom, temperature). With the workload's needs (gpus, gpu_memory_gb, cores): where
        to place it."""
        needs = [
            (name, str(value))
            for name, value in (("gpus", gpus), ("gpu_memory_gb", gpu_memory_gb), ("cores", cores))
            if value is not None
        ]
        async with link.api(request_of(ctx)) as api:
            if needs:
                answer = await api.get("/recommend/placement", needs)
            else:
                answer = await api.get("/recommend")
        return shaping.result(_as_object(answer))


def _as_object(answer: Any) -> dict[str, Any]:
    """A route's answer as the object a tool result is: a list or text is wrapped."""
    if isinstance(answer, dict):
        return answer
    return {"result": answer}
