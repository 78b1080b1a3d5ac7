"""Bearer tokens at the API's boundary: who may read, who may control.

Every route states its access with one of two dependencies, checked before the route runs
(so a refused call changes nothing):

- `ReadAccess` (GET routes, /metrics, the WebSocket): a `read` or `control` token, or no
  token at all from a loopback client while `ctx.open_reads_on_loopback` is on;
- `ControlAccess` (every route that changes something): a `control` token, always;
- `IngestAccess` (`POST /ingest`, the agents' push): an `ingest` or `control` token, always.

A missing or unknown token is a 401 with `WWW-Authenticate: Bearer`, a `read` token on a
control route a 403. A token that is sent is always checked, even where none is needed, so a
revoked token is noticed at once. The secret is compared in `TokenStore.verify` (constant time,
on the hashes); it reads the token file, so it runs in the thread pool, never on the loop.

FastAPI reads and parses a route's body before it solves the route's dependencies, so a route
that takes a body is an `AccessFirstRoute`: the same access is checked before anything is
read, and 100 MB of JSON without a token costs a 401, not a parse.

The caller's identity (`Caller.issued_by`: `<name> (token <id>)`) goes into the commands,
acks and maintenance it causes: a token's id is public (`rackwatch token list`), its secret
never is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from rackwatch.api.deps import ApiContext, get_ctx
from rackwatch.errors import ConfigError
from rackwatch.tokens import TokenInfo

READ: Final = "read"
CONTROL: Final = "control"
INGEST: Final = "ingest"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description=(
        "A token from `rackwatch token create --scope read|control|ingest`. Reads from this "
        "machine need none while `[server] open_reads_on_loopback` is on; control and ingest "
        "always do."
    ),
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a checked token, or None for an open loopback read."""

    token: TokenInfo | None

    @property
    def issued_by(self) -> str:
        """The `issued_by` of what this caller causes: the token's name and public id,
        `ops (token c8c734d04242)`, so people read who it was and the id still tells tokens
        of the same name apart."""
        return "loopback" if self.token is None else self.token.label


def is_loopback(host: str | None) -> bool:
    """Whether a peer address is this machine (127.0.0.0/8, ::1, IPv4-mapped loopback).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("::ffff:127.0.0.1")
    (True, True, True)
    >>> is_loopback("10.0.0.7"), is_loopback("testclient"), is_loopback(None)
    (False, False, False)
    """
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _refuse(status: int, detail: str) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=detail, headers=headers)


async def authorize(
    conn: HTTPConnection, ctx: ApiContext, secret: str | None, scope: str
) -> Caller:
    """The caller if it may use a route of `scope`; HTTPException 401/403/503 otherwise."""
    if secret is None:
        if scope == READ and ctx.open_reads_on_loopback:
            if is_loopback(conn.client.host if conn.client else None):
                return Caller(None)
            raise _refuse(
                401,
                "reads from another machine need a bearer token: send 'Authorization: Bearer "
                "<token>' with a token from `rackwatch token create --scope read`",
            )
        raise _refuse(
            401,
            f"this route needs a bearer token with the {scope!r} scope: send 'Authorization: "
            f"Bearer <token>' with a token from `rackwatch token create --scope {scope}`",
        )
    if ctx.tokens is None:
        raise _refuse(401, "this server checks no tokens (it was started without a token store)")
    try:
        info = await run_in_threadpool(ctx.tokens.verify, secret)
    except ConfigError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    if info is None:
        raise _refuse(
            401,
            "unknown or revoked token: check it with `rackwatch token list`, or create one "
            f"with `rackwatch token create --scope {scope}`",
        )
    if not info.allows(scope):
        raise _refuse(
            403,
            f"token {info.id} has the {info.scope!r} scope; this route needs {scope!r}: create "
            f"one with `rackwatch token create --scope {scope}`",
        )
    return Caller(info)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def read_access(
    conn: HTTPConnection, ctx: Annotated[ApiContext, Depends(get_ctx)], credentials: Credentials
) -> Caller:
    return _checked_first(conn, READ) or await authorize(conn, ctx, _secret(credentials), READ)


async def control_access(
    conn: HTTPConnection, ctx: Annotated[ApiContext, Depends(get_ctx)], credentials: Credentials
) -> Caller:
    checked = _checked_first(conn, CONTROL)
    return checked or await authorize(conn, ctx, _secret(credentials), CONTROL)


async def ingest_access(
    conn: HTTPConnection, ctx: Annotated[ApiContext, Depends(get_ctx)], credentials: Credentials
) -> Caller:
    checked = _checked_first(conn, INGEST)
    return checked or await authorize(conn, ctx, _secret(credentials), INGEST)


_CHECKED_CALLER: Final = "rackwatch.caller"
"""Scope state key of (access scope, caller) that `AccessFirstRoute` authorized already."""


def _checked_first(conn: HTTPConnection, scope: str) -> Caller | None:
    checked = conn.scope.get("state", {}).get(_CHECKED_CALLER)
    return checked[1] if checked is not None and checked[0] == scope else None


class AccessFirstRoute(APIRoute):
    """An APIRoute that checks access before its body is read (FastAPI reads and validates a
    body before it solves the route's dependencies, so `ControlAccess` alone would come after
    parsing whatever a caller without a token sent).

    The scope is the route's own (`control_access` or `read_access` among its dependencies);
    a refusal is the dependency's 401/403/503, and the caller is handed on to the dependency,
    so the token is checked once. Every router whose routes take a body uses it
    (`APIRouter(route_class=AccessFirstRoute)`); a route without a body is unchanged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        access = _route_access(self) if self.body_field is not None else None
        if access is None:
            return handler

        async def access_first(request: Request) -> Response:
            credentials = await bearer(request)
            caller = await authorize(request, get_ctx(request), _secret(credentials), access)
            request.scope.setdefault("state", {})[_CHECKED_CALLER] = (access, caller)
            return await handler(request)

        return access_first


def _route_access(route: APIRoute) -> str | None:
    """CONTROL, READ or INGEST, from the access dependency anywhere in the route's
    dependencies."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is control_access:
            return CONTROL
        if dependency.call is read_access:
            return READ
        if dependency.call is ingest_access:
            return INGEST
        pending.extend(dependency.dependencies)
    return None


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else credentials.credentials


def websocket_secret(conn: HTTPConnection) -> str | None:
    """The WebSocket's token: `Authorization: Bearer` (non-browser clients) or `?token=`
    (browsers cannot set headers on a WebSocket)."""
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return conn.query_params.get("token") or None


ReadAccess = Annotated[Caller, Depends(read_access)]
ControlAccess = Annotated[Caller, Depends(control_access)]
IngestAccess = Annotated[Caller, Depends(ingest_access)]
READ_ACCESS = Depends(read_access)
"""For `dependencies=[READ_ACCESS]` where the route does not need the caller."""

__all__ = [
    "CONTROL",
    "INGEST",
    "READ",
    "READ_ACCESS",
    "AccessFirstRoute",
    "Caller",
    "ControlAccess",
    "IngestAccess",
    "ReadAccess",
    "authorize",
    "is_loopback",
    "websocket_secret",
]
