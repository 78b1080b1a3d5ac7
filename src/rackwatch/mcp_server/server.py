"""`build_server(link)`: the MCP server of rackwatch, one set of tools whatever the transport
(`links.py` says how the tools reach the API).

Two checks wrap every message (`_guard`): a caller without a control token is not shown the
control tools (calling one anyway is refused by the API), and a tool call with an argument the
tool does not take is refused, naming the ones it takes (the SDK would drop it silently, and a
misspelt `entity` would quietly answer for the whole room).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from starlette.requests import Request

from rackwatch import __version__
from rackwatch.mcp_server.control_tools import CONTROL_TOOLS, add_control_tools
from rackwatch.mcp_server.health_tools import add_health_tools
from rackwatch.mcp_server.links import Link
from rackwatch.mcp_server.planning_tools import add_planning_tools
from rackwatch.mcp_server.telemetry_tools import add_telemetry_tools

NAME: Final = "rackwatch"
INSTRUCTIONS: Final = """rackwatch monitors a server room (and its simulated twin): servers,
fans, racks, PDUs, the CRAC and real machines (host/<name>). Entity paths are
cluster/rack/server[/part], e.g. c01/r01/s03 and c01/r01/s03/fan1; globs take * (one segment)
and ** (any number). Start with list_devices, then get_state, get_history, list_alerts,
list_incidents and explain_health. Times are epoch ms, ISO 8601, 'now' or -6h. Tools that
change anything need a control token and are only listed to a caller that has one."""


def build_server(link: Link) -> MCPServer:
    server: MCPServer = MCPServer(
        NAME, instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    add_telemetry_tools(server, link)
    add_health_tools(server, link)
    add_planning_tools(server, link)
    add_control_tools(server, link)
    server.middleware.append(_Guard(server, link))
    return server


class _Guard:
    """Hides the control tools from a caller without a control token, refuses unknown
    arguments, and takes pydantic's documentation links out of tool errors."""

    def __init__(self, server: MCPServer, link: Link) -> None:
        self.server = server
        self.link = link
        self.arguments: dict[str, frozenset[str]] | None = None

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.params is not None:
            refusal = await self._unknown_arguments(ctx.params)
            if refusal is not None:
                return refusal
        result = await call_next(ctx)
        if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
            result = _tidy(result)
        if ctx.method == "tools/list" and isinstance(result, dict):
            request = ctx.request if isinstance(ctx.request, Request) else None
            if not self.link.may_control(request):
                tools = [t for t in result.get("tools", []) if t.get("name") not in CONTROL_TOOLS]
                result = {**result, "tools": tools}
        return result

    async def _unknown_arguments(self, params: Mapping[str, Any]) -> CallToolResult | None:
        if self.arguments is None:
            self.arguments = {
                tool.name: frozenset(tool.input_schema.get("properties", {}))
                for tool in await self.server.list_tools()
            }
        taken = self.arguments.get(str(params.get("name")))
        given = params.get("arguments")
        if taken is None or not isinstance(given, Mapping):
            return None  # an unknown tool or no arguments: the SDK answers
        unknown = sorted(str(k) for k in given if k not in taken)
        if not unknown:
            return None
        text = (
            f"{params.get('name')} does not take {', '.join(repr(k[:40]) for k in unknown[:5])}; "
            f"it takes: {', '.join(sorted(taken)) or 'no arguments'}"
        )
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


_PYDANTIC_LINK: Final = re.compile(r"\n +For further information visit \S+")


def _tidy(result: dict[str, Any]) -> dict[str, Any]:
    """A tool error without pydantic's documentation links (noise to an assistant: the
    message before them says what is wrong)."""
    content = [
        {**item, "text": _PYDANTIC_LINK.sub("", item["text"])}
        if item.get("type") == "text" and isinstance(item.get("text"), str)
        else item
        for item in result.get("content", [])
    ]
    return {**result, "content": content}


async def serve_stdio(link: Link) -> None:
    """Serve the tools on stdin/stdout until the client closes them."""
    await build_server(link).run_stdio_async()
