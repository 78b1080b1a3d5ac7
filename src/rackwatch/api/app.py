"""`create_app(ctx)`: the FastAPI application (REST, WebSocket, /metrics, the dashboard).

A factory, never a module-level app: each test builds its own from a temporary store. The
WebSocket broadcaster runs for the app's lifespan; the dashboard's static files are mounted
at `/` after every API route, so they never shadow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from rackwatch.api import prometheus, ws
from rackwatch.api.deps import ApiContext
from rackwatch.api.params import ParamError
from rackwatch.api.routes import ROUTERS
from rackwatch.errors import StoreError
from rackwatch.web import STATIC_DIR

API_PREFIX = "/api/v1"

DESCRIPTION = """Live and stored telemetry of the room: inventory, live state, series (raw or
rollups), events and server status; alerts, device states, fans, maintenance and the twin's
faults. The WebSocket `/ws` streams updates and alerts; `/metrics` is the Prometheus
exposition. Times are epoch milliseconds (UTC) in `*_ms` fields. Reads take a `read` or
`control` bearer token (none from this machine by default); changes need a `control` token
(`rackwatch token create --scope control`). See docs/API.md."""


def create_app(ctx: ApiContext) -> FastAPI:
    """The app for one context; the WebSocket broadcaster starts with its lifespan."""
    hub = ctx.build_hub()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        broadcaster = asyncio.create_task(hub.run(ctx.bus), name="ws-broadcaster")
        try:
            yield
        finally:
            broadcaster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await broadcaster

    app = FastAPI(
        title="rackwatch", version=ctx.version, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.ctx = ctx
    app.state.hub = hub
    app.state.metrics_registry = prometheus.build_registry(ctx, hub)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ws.router)
    app.include_router(prometheus.router)
    _add_error_handlers(app)
    _add_fallbacks(app)
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="web")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def bad_param(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    async def bad_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            if err["type"] == "json_invalid":
                why = err.get("ctx", {}).get("error", "")
                problems.append(f"the body is not valid JSON ({why}): send a JSON object")
                continue
            where = ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
            got = f" (got {err['input']!r})" if "input" in err else ""
            problems.append(f"{where}: {err['msg']}{got}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    async def store_failed(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": f"the store could not answer: {exc}"}, status_code=503)

    app.add_exception_handler(ParamError, bad_param)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StoreError, store_failed)


def _add_fallbacks(app: FastAPI) -> None:
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        icon = STATIC_DIR / "favicon.ico"
        if icon.is_file():
            return FileResponse(icon)
        return Response(FAVICON_PNG, media_type="image/png")

    @app.api_route(
        "/api/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def no_such_route(path: str) -> Response:
        return JSONResponse(
            {"detail": f"no API route /api/{path}: see /docs for the routes"}, status_code=404
        )


def _png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A one-colour PNG (the fallback favicon, so a browser's request never 404s)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgba) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


FAVICON_PNG = _png(16, 16, (37, 99, 235, 255))
