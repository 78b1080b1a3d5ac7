"""MCP over streamable HTTP at `/mcp` of the API app that `rackwatch run` serves.

`mount(app, host=...)` adds the route (ahead of the dashboard's catch-all static files) and
wraps the app's lifespan. The SDK is loaded and its session manager started on the first
request to `/mcp` (its import, about 0.6 s, happens in a worker thread: `rackwatch run` starts
no later for it, and the event loop that drives the fans never waits on it), then runs until
the app stops. The transport is stateless with JSON answers: every tool call is one POST
carrying its caller's token, no session outlives its request, and a GET (a stream for
server-sent messages, which this server never sends) is a 405, so nothing holds a connection
open when the server stops.

Access is the API's: `/mcp` is a read route (a `read` or `control` token, or none from a
loopback client while `open_reads_on_loopback` is on; an `ingest` token is refused), checked
before the SDK reads anything; each tool then calls the API in-process as the same caller
(`links.InProcessLink`), so control tools need a control token exactly as over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from rackwatch.api.auth import READ, authorize
from rackwatch.api.deps import get_ctx
from rackwatch.mcp_server.caller import CALLER_KEY

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings

PATH: Final = "/mcp"
MAX_BODY_BYTES: Final = 64 * 1024
"""A tool call is a small JSON object, as the API's control bodies are."""
_LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class McpEndpoint:
    """The ASGI app at `/mcp`: access first, then the SDK's session manager (started on the
    first request while the app runs; before the app starts or once it stops, a 503)."""

    def __init__(self, app: FastAPI, *, host: str) -> None:
        self.app = app
        self.host = host
        self._running = False
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[StreamableHTTPSessionManager] | None = None
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """One lifespan of the app: requests are served during it; at its end the session
        manager (if one was started) stops."""
        self._running, self._stop, self._ready, self._task = True, asyncio.Event(), None, None
        try:
            yield
        finally:
            self._running = False
            self._stop.set()
            if self._task is not None:
                with contextlib.suppress(Exception):
                    await self._task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._running:
            detail = "MCP is not running: the server is starting or stopping"
            await JSONResponse({"detail": detail}, 503)(scope, receive, send)
            return
        if scope["method"] == "GET":  # a stream for server-sent messages: this server sends none
            detail = "this MCP endpoint is stateless and offers no stream: POST JSON-RPC messages"
            refusal = JSONResponse({"detail": detail}, 405, headers={"Allow": "POST"})
            await refusal(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            caller = await authorize(conn, get_ctx(conn), _bearer_secret(conn), READ)
        except HTTPException as exc:
            refusal = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_KEY] = caller
        manager = await self._manager()
        await manager.handle_request(scope, receive, send)

    async def _manager(self) -> StreamableHTTPSessionManager:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._serve(self._ready), name="mcp-sessions")
        return await asyncio.shield(self._ready)

    async def _serve(self, ready: asyncio.Future[StreamableHTTPSessionManager]) -> None:
        """Build the MCP server and run its session manager until the app stops."""
        try:
            server_module = await asyncio.to_thread(
                importlib.import_module, "rackwatch.mcp_server.server"
            )
            links = importlib.import_module("rackwatch.mcp_server.links")
            server = server_module.build_server(links.InProcessLink(self.app))
            server.streamable_http_app(
                streamable_http_path=PATH,
                stateless_http=True,
                json_response=True,
                max_request_body_size=MAX_BODY_BYTES,
                transport_security=_security(self.host),
            )
            manager: StreamableHTTPSessionManager = server.session_manager
            async with manager.run():
                ready.set_result(manager)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise


def mount(app: FastAPI, *, host: str) -> McpEndpoint:
    """Serve MCP at `/mcp` of `app` (`host`: the address the server listens on; on loopback
    the SDK's DNS-rebinding protection is on)."""
    endpoint = McpEndpoint(app, host=host)
    # First: the dashboard's static files are mounted at / and would take /mcp.
    app.router.routes.insert(0, Route(PATH, endpoint, name="mcp"))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running_app: Any) -> AsyncIterator[Any]:
        async with endpoint.running(), inner(running_app) as state:
            yield state

    app.router.lifespan_context = lifespan
    return endpoint


def _bearer_secret(conn: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>` (another scheme is no token, as for the
    API's routes)."""
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _security(host: str) -> TransportSecuritySettings | None:
    """On loopback, only requests addressed to this machine by name (a web page whose host
    name was re-bound to 127.0.0.1 is refused); elsewhere the tokens decide."""
    if host not in _LOOPBACK_NAMES:
        return None
    from mcp.server.transport_security import TransportSecuritySettings

    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
