"""WebSocket /ws: the seed 001 protocol (connection, ping/pong, get_status, subscribe,
unsubscribe, monitoring_data, error) on top of the fan-out in `fanout.py`.

Every message to the client, replies included, goes through the client's bounded queue and
its sender task, so one slow socket never blocks this receive loop or anyone else.

Access is checked before anything else (`auth.authorize`, read scope): the token comes in
`Authorization: Bearer` or `?token=`. A refused client gets an `UNAUTHORIZED` error message
and close code 4401. The token is checked once, at connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import ValidationError

from rackwatch.api.auth import READ, authorize, websocket_secret
from rackwatch.api.deps import ApiContext
from rackwatch.api.fanout import Client, ClientTooSlow, Filter, Hub
from rackwatch.api.params import ParamError, check_entity_glob, check_metric_globs, iso
from rackwatch.api.schemas import SubscribeIn

router = APIRouter()

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
        await authorize(websocket, ctx, websocket_secret(websocket), READ)
    except HTTPException as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    client = hub.connect(websocket.send_text)
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
    sender = asyncio.create_task(hub.pump(client), name=f"ws-send-{client.id}")
    receiver = asyncio.create_task(_receive(websocket, hub, ctx, client), name=f"ws-{client.id}")
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        for task in (sender, receiver):
            task.cancel()
        results = await asyncio.gather(sender, receiver, return_exceptions=True)
    if any(isinstance(r, ClientTooSlow) for r in results):
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await websocket.close(code=CLOSE_POLICY_VIOLATION, reason="too slow")


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
    try:
        message = json.loads(text)
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
