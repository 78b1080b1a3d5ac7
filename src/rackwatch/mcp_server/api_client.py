"""The REST API of `rackwatch run`, as the tools call it: every answer that is not a success
becomes a `ToolError` whose message says what went wrong and what to do, in words an
assistant can act on.

The API decides who may do what (its bearer tokens, docs/API.md): the tools send the caller's
token and pass its refusals on, so an MCP caller can never do more than the same caller could
do over REST.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx
from mcp.server.mcpserver.exceptions import ToolError

API_PREFIX: Final = "/api/v1"
MAX_DETAIL_CHARS: Final = 500
"""A refusal's detail is the server's own sentence; more than this is not a sentence."""
_NO_ROUTE: Final = "no API route"
"""How the API's catch-all starts the detail of a 404 for a route it does not have."""

Params = Sequence[tuple[str, str]]


class RackwatchApi:
    """Calls to one rackwatch server's `/api/v1` through `client` (whose base URL ends in
    /api/v1). `token_hint` is added to a refusal: how this caller gives a token."""

    def __init__(self, client: httpx.AsyncClient, where: str, token_hint: str) -> None:
        self.client = client
        self.where = where
        self.token_hint = token_hint

    async def get(self, path: str, params: Params = ()) -> Any:
        return await self._call("GET", path, params=list(params))

    async def get_optional(self, path: str, params: Params = ()) -> Any | None:
        """As `get`, but None when the part of the server that answers the route is not
        running (503: no alert engine, no intelligence...)."""
        try:
            return await self._call("GET", path, params=list(params), absent_ok=True)
        except _Absent:
            return None

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self._call("POST", path, json=dict(body))

    async def delete(self, path: str) -> Any:
        return await self._call("DELETE", path)

    async def _call(self, method: str, path: str, *, absent_ok: bool = False, **kw: Any) -> Any:
        try:
            response = await self.client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ToolError(
                f"rackwatch at {self.where} does not answer ({type(exc).__name__}: {exc}); "
                "check that `rackwatch run` is running, then try again"
            ) from None
        if response.is_success:
            return _body(response)
        if absent_ok and response.status_code == 503:
            raise _Absent
        raise self._refusal(method, path, response)

    def _refusal(self, method: str, path: str, response: httpx.Response) -> ToolError:
        status, detail = response.status_code, detail_of(response)
        if status in (401, 403):
            return ToolError(f"refused by rackwatch ({status}): {detail}. {self.token_hint}")
        if status == 404 and detail.startswith(_NO_ROUTE):
            return ToolError(
                f"this rackwatch server has no {API_PREFIX}{path} route (it is older than "
                "this feature): update rackwatch and restart `rackwatch run`"
            )
        if status == 503:
            return ToolError(f"rackwatch cannot answer this now: {detail}")
        if status >= 500:
            return ToolError(
                f"rackwatch failed on {method} {API_PREFIX}{path} ({status}): {detail}"
            )
        return ToolError(detail)


class _Absent(Exception):
    """A 503 that `get_optional` turns into None."""


def detail_of(response: httpx.Response) -> str:
    """The API's `detail` sentence, or the start of whatever else the body is."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:MAX_DETAIL_CHARS] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:MAX_DETAIL_CHARS]
    return str(body)[:MAX_DETAIL_CHARS]


def _body(response: httpx.Response) -> Any:
    """JSON as Python values; any other body as its text (a report may be Markdown)."""
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def path_part(value: str) -> str:
    """`value` quoted for one place in a URL path (`/` kept: entity paths nest)."""
    return quote(value, safe="/")
