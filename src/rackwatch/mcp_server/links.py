"""How one tool call reaches the REST API, and whether its caller may control: the only thing
the two transports do differently.

- `InProcessLink` (`/mcp` of `rackwatch run`): the API app is called in-process, as the
  HTTP caller: its `Authorization` header and its address are passed on, so the API applies
  to each call the rules it applies to that caller (a loopback caller may read without a
  token while `open_reads_on_loopback` is on; control needs a control token).
- `RemoteLink` (`rackwatch mcp`, stdio): the server that holds the data directory is found
  on each call (`server.json`, so a server started or restarted later is found too) and
  called over HTTP with the token the command was given.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final, Protocol

import httpx
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.types import ASGIApp

from rackwatch.mcp_server.api_client import API_PREFIX, RackwatchApi
from rackwatch.mcp_server.caller import holds_control

TIMEOUT_S: Final = 30.0
NOT_LOOPBACK: Final = ("unknown", 0)
"""The address passed on for a caller whose address is unknown: never loopback."""


class Link(Protocol):
    """Where the tools' API calls go for one MCP request (`request`: the HTTP request that
    carried it, None over stdio)."""

    def api(self, request: Request | None) -> contextlib.AbstractAsyncContextManager[RackwatchApi]:
        """A client of the API acting as this request's caller."""
        ...

    def may_control(self, request: Request | None) -> bool:
        """Whether the caller holds a control token (the control tools are listed to it)."""
        ...


class InProcessLink:
    """The API app of this very server, called in-process as the HTTP caller."""

    token_hint = (
        "The MCP client must send 'Authorization: Bearer <token>' to /mcp with a token from "
        "`rackwatch token create` (scope read, or control to change anything)."
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @contextlib.asynccontextmanager
    async def api(self, request: Request | None) -> AsyncIterator[RackwatchApi]:
        if request is None:
            raise ToolError("this tool call came without its HTTP request: call it over /mcp")
        headers = {}
        authorization = request.headers.get("authorization")
        if authorization is not None:
            headers["Authorization"] = authorization
        address = (request.client.host, request.client.port) if request.client else NOT_LOOPBACK
        transport = httpx.ASGITransport(self.app, client=address, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=f"http://rackwatch{API_PREFIX}",
            headers=headers,
            timeout=TIMEOUT_S,
        ) as client:
            yield RackwatchApi(client, "this server", self.token_hint)

    def may_control(self, request: Request | None) -> bool:
        return request is not None and holds_control(request.scope.get("state", {}))


class RemoteLink:
    """The `rackwatch run` that holds a data directory, over HTTP.

    `locate()` gives its base URL, or None when no server runs there (`readout.server_file`);
    `token` is sent with every call when given; `is_control` says whether it is a control
    token (checked against the data directory's tokens by the command). `transport` replaces
    the network in tests.
    """

    def __init__(
        self,
        locate: Callable[[], str | None],
        data_dir: str,
        token: str | None = None,
        *,
        is_control: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.locate = locate
        self.data_dir = data_dir
        self.token = token
        self.is_control = is_control
        self.transport = transport
        self.token_hint = (
            "Give `rackwatch mcp` a token with --token or the RACKWATCH_TOKEN environment "
            "variable (`rackwatch token create --scope read`, or --scope control to change "
            "anything), then restart it."
        )

    @contextlib.asynccontextmanager
    async def api(self, request: Request | None) -> AsyncIterator[RackwatchApi]:
        del request  # stdio has one caller: this process, with its token
        url = self.locate()
        if url is None:
            raise ToolError(
                f"no `rackwatch run` is serving the data directory {self.data_dir}: start one "
                f"(rackwatch run --data-dir {self.data_dir}), then call this tool again"
            )
        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(
            base_url=url.rstrip("/") + API_PREFIX,
            headers=headers,
            timeout=TIMEOUT_S,
            transport=self.transport,
        ) as client:
            yield RackwatchApi(client, url, self.token_hint)

    def may_control(self, request: Request | None) -> bool:
        del request
        return self.is_control


def request_of(ctx: Context) -> Request | None:
    """The HTTP request that carried this tool call (None over stdio)."""
    request = ctx.request_context.request
    return request if isinstance(request, Request) else None
