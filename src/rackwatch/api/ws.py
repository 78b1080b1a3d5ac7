"""WebSocket /ws: the monitoring protocol of docs/API.md (connection, ping/pong, get_status,
subscribe, unsubscribe, monitoring_data, error) on top of the fan-out in `fanout/`.

Every message to the client, replies included, goes through the client's bounded queue and
its sender task, so one slow socket never blocks this receive loop or anyone else.

Access is checked before anything else (`auth.authorize`, read scope): the token comes in
`Authorization: Bearer` or `?token=`. A refused client gets an `UNAUTHORIZED` error message
and close code 4401. The tokens of open sockets are checked again every
`TOKEN_RECHECK_SECONDS` (`Hub.watch_tokens`: one read of the token file for all of them), so
revoking a token, even from another process, closes its sockets the same way.

A client that stops reading is closed with 1008: the hub sees the bytes it wrote that the
peer has not acknowledged (`connection_backlog`: the server transport's buffer plus, on Linux,
the kernel's send queue), not only sends that block. Client messages are small: one longer
than `MAX_MESSAGE_CHARS`, or nested deeper than the JSON parser goes, is an `INVALID_FORMAT`
error like any other bad message, and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import ValidationError

from rackwatch.api.auth import READ, authorize, websocket_secret
from rackwatch.api.deps import ApiContext
from rackwatch.api.fanout import Backlog, Client, ClientClosed, ClientTooSlow, Filter, Hub
from rackwatch.api.params import ParamError, check_entity_glob, check_metric_globs, iso
from rackwatch.api.schemas import SubscribeIn

try:  # POSIX; the kernel's send queue is read only where TIOCOUTQ answers for a socket
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows
    fcntl = termios = None  # type: ignore[assignment]

router = APIRouter()

MAX_MESSAGE_CHARS = 16 * 1024
"""The longest client message read (a subscribe with every metric is under 1 KiB). The
server refuses messages over 64 KiB before they reach the app (close code 1009)."""
TOKEN_RECHECK_SECONDS = 2.0

CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TIMEOUT_S = 1.0
CLOSE_UNAUTHORIZED = 4401
"""No token, or an unknown one (HTTP's 401, in the 4000-4999 range left to applications)."""
CLOSE_FORBIDDEN = 4403
CLOSE_INTERNAL_ERROR = 1011
_REFUSED = {401: ("UNAUTHORIZED", CLOSE_UNAUTHORIZED), 403: ("FORBIDDEN", CLOSE_FORBIDDEN)}


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def error(code: str, message: str) -> str:
    return _dumps({"type": "error", "code": code, "message": message})


def _now_iso() -> str:
    return iso(time.time_ns() // 1_000_000)


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    ctx: ApiContext = websocket.app.state.ctx
    try:
        caller = await authorize(websocket, ctx, websocket_secret(websocket), READ)
    except HTTPException as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    transport = _transport_of(websocket)
    token_id = None if caller.token is None else caller.token.id
    client = hub.connect(
        websocket.send_text,
        backlog=None if transport is None else connection_backlog(transport),
        token_id=token_id,
    )
    if client is None:
        await websocket.send_text(
            error(
                "TOO_MANY_CLIENTS",
                f"the server already has {hub.client_limit} clients connected; try again later",
            )
        )
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="too many clients")
        return
    hub.put(
        client,
        _dumps(
            {
                "type": "connection",
                "status": "connected",
                "client_id": client.id,
                "timestamp": _now_iso(),
            }
        ),
    )
    if token_id is not None and ctx.tokens is not None:
        hub.watch_tokens(
            ctx.tokens.ids,
            _revoked_message,
            interval_s=TOKEN_RECHECK_SECONDS,
            code=CLOSE_UNAUTHORIZED,
        )
    sender = asyncio.create_task(hub.pump(client), name=f"ws-send-{client.id}")
    receiver = asyncio.create_task(_receive(websocket, hub, ctx, client), name=f"ws-{client.id}")
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        for task in (sender, receiver):
            task.cancel()
        results = await asyncio.gather(sender, receiver, return_exceptions=True)
    closing = next((r for r in results if isinstance(r, ClientTooSlow | ClientClosed)), None)
    if closing is None:
        return
    code, reason = (
        (closing.code, closing.reason)
        if isinstance(closing, ClientClosed)
        else (CLOSE_POLICY_VIOLATION, "too slow")
    )
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code=code, reason=reason)
    except Exception:  # the close frame cannot even be written: drop the connection
        if transport is not None:
            transport.abort()


def _revoked_message(client: Client) -> str:
    return error(
        "UNAUTHORIZED",
        f"token {client.token_id} was revoked: connect again with a valid token "
        "(`rackwatch token list`, `rackwatch token create --scope read`)",
    )


def _transport_of(websocket: WebSocket) -> asyncio.WriteTransport | None:
    """The server's transport under this WebSocket, found by following the ASGI `send`
    callable down through the middleware's wrappers (closures) to the server protocol's bound
    method (uvicorn's protocols keep theirs in `.transport`). None elsewhere (a test client,
    another server): then only a send that blocks shows a slow client."""
    pending: list[Any] = [getattr(websocket, "_send", None)]
    for _ in range(16):  # a few wrappers deep at most
        if not pending:
            break
        fn = pending.pop()
        transport = getattr(getattr(fn, "__self__", None), "transport", None)
        if isinstance(transport, asyncio.WriteTransport):
            return transport
        for cell in getattr(fn, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                if callable(cell.cell_contents):
                    pending.append(cell.cell_contents)
    return None


def connection_backlog(transport: asyncio.WriteTransport) -> Backlog:
    """Bytes written to the connection that the peer has not acknowledged: the transport's
    own buffer plus, where the OS tells (Linux: TIOCOUTQ), the socket's send queue. The
    kernel acknowledges what lands in the peer's receive buffer, so a peer that stops
    reading shows up once its receive window is full, not megabytes later."""
    sock = transport.get_extra_info("socket")
    has_ioctl = fcntl is not None and hasattr(termios, "TIOCOUTQ")

    def kernel_queue() -> int:
        fileno = sock.fileno() if sock is not None and has_ioctl else -1  # -1 once closed
        if fileno < 0:
            return 0
        try:
            raw = fcntl.ioctl(fileno, termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:  # not supported for sockets here, or the socket is gone
            return 0
        return int(struct.unpack("i", raw)[0])

    def backlog() -> int:
        return transport.get_write_buffer_size() + kernel_queue()

    return backlog


async def _refuse(websocket: WebSocket, exc: HTTPException) -> None:
    """Accept, say why in an error message, then close with 4401/4403: a browser sees neither
    the HTTP status of a refused handshake nor its body, but it does see these."""
    code, close_code = _REFUSED.get(exc.status_code, ("UNAVAILABLE", CLOSE_INTERNAL_ERROR))
    await websocket.accept()
    with contextlib.suppress(Exception):
        await websocket.send_text(error(code, str(exc.detail)))
        await websocket.close(code=close_code, reason=code.lower())


async def _receive(websocket: WebSocket, hub: Hub, ctx: ApiContext, client: Client) -> None:
    """Answer the client's messages until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            raw = message.get("bytes") or b""
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                text = ""
        reply = handle(text, hub, ctx, client)
        if reply is not None:
            hub.put(client, reply)


def handle(text: str, hub: Hub, ctx: ApiContext, client: Client) -> str | None:
    """The reply to one client message (monitoring data is queued by the hub itself)."""
    if len(text) > MAX_MESSAGE_CHARS:
        return error(
            "INVALID_FORMAT",
            f"messages are at most {MAX_MESSAGE_CHARS} characters, this one has {len(text)}",
        )
    try:
        message = json.loads(text)
    except RecursionError:  # nested deeper than the parser goes: C stack, not a crash
        return error("INVALID_FORMAT", "the message is nested too deeply: send a flat object")
    except ValueError:
        return error("INVALID_FORMAT", 'messages must be JSON objects like {"type": "ping"}')
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return error("INVALID_FORMAT", 'messages must be JSON objects with a string "type"')
    kind = message["type"]
    if kind == "ping":
        return _dumps({"type": "pong", "timestamp": _now_iso()})
    if kind == "get_status":
        return _dumps(
            {
                "type": "status",
                "connected_clients": hub.n_clients,
                "server_start_time": iso(int(ctx.started_at_s * 1000)),
                "version": ctx.version,
                "message": "Server is running",
            }
        )
    if kind == "subscribe":
        try:
            flt = parse_filter(message, ctx)
        except ParamError as exc:
            return error("INVALID_FILTER", str(exc))
        hub.put(client, _dumps({"type": "subscribed", "filters": flt.describe()}))
        hub.subscribe(client, flt)
        return None
    if kind == "unsubscribe":
        hub.unsubscribe(client)
        return _dumps({"type": "unsubscribed"})
    return error(
        "UNKNOWN_TYPE",
        f"unknown message type {kind!r}: use ping, get_status, subscribe or unsubscribe",
    )


def parse_filter(message: dict[str, Any], ctx: ApiContext) -> Filter:
    """A subscribe message as a Filter; ParamError saying which field is wrong."""
    try:
        sub = SubscribeIn.model_validate(message)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ParamError(
            f"{where}: {first['msg']}; subscribe takes entity (glob), metrics (list of names "
            "or globs) and max_rate_hz (0 < rate <= 100)"
        ) from None
    metrics = [sub.metrics] if isinstance(sub.metrics, str) else sub.metrics
    checked = check_metric_globs(metrics)
    ctx.check_metric_names(checked)
    return Filter(
        entity=check_entity_glob(sub.entity),
        metrics=None if checked is None else tuple(sorted(set(checked))),
        max_rate_hz=None if sub.max_rate_hz is None else float(sub.max_rate_hz),
    )
