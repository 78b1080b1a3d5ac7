"""`create_app(ctx)`: the FastAPI application (REST, WebSocket, /metrics, the dashboard).

A factory, never a module-level app: each test builds its own from a temporary store. The
WebSocket hub follows the live state for the app's lifespan (which also keeps that table from
the bus unless the pipeline does, `ctx.feeds_live`); the dashboard's static files are mounted
at `/` after every API route, so they never shadow one. `/docs` (Swagger UI) loads its script
and style from the vendored copy under the static files, never from a CDN: server rooms are
often air-gapped. ReDoc, which would need a CDN too, is not served: `/redoc` redirects to
`/docs`.

Bad input never costs more than it must: a request body is capped at `MAX_BODY_BYTES` (413,
also for a chunked body without Content-Length), access is checked before a body is read
(`auth.AccessFirstRoute`), and an error quotes bad input as a short excerpt, never whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from rackwatch.api import prometheus, ws
from rackwatch.api.deps import ApiContext
from rackwatch.api.params import EXCERPT_LENGTH, ParamError, excerpt
from rackwatch.api.routes import ROUTERS, ingest
from rackwatch.engine.live import feed
from rackwatch.errors import StoreError
from rackwatch.web import STATIC_DIR

API_PREFIX = "/api/v1"
SWAGGER_UI_DIR = "/vendor/swagger-ui"
"""Where the static mount serves the vendored swagger-ui-dist (web/static/vendor/swagger-ui)."""
MAX_BODY_BYTES = 64 * 1024
"""Control bodies are small JSON objects (a fault with its parameters is well under 1 KiB)."""

DESCRIPTION = """Live and stored telemetry of the room: inventory, live state, series (raw or
rollups), events and server status; alerts, device states, fans, maintenance and the twin's
faults. The WebSocket `/ws` streams updates and alerts; `/metrics` is the Prometheus
exposition. Times are epoch milliseconds (UTC) in `*_ms` fields. Reads take a `read` or
`control` bearer token (none from this machine by default); changes need a `control` token
(`rackwatch token create --scope control`). See docs/API.md."""


def create_app(ctx: ApiContext) -> FastAPI:
    """The app for one context; with `ctx.feeds_live` its lifespan keeps the live state."""
    hub = ctx.build_hub()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feeder = None
        if ctx.feeds_live:
            feeder = asyncio.create_task(feed(ctx.bus, ctx.live), name="live-state")
        try:
            yield
        finally:
            hub.close()
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder

    app = FastAPI(
        title="rackwatch",
        version=ctx.version,
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        docs_url=None,  # served below from the vendored files, not FastAPI's CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.hub = hub
    app.state.metrics_registry = prometheus.build_registry(ctx, hub)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(ws.router)
    app.include_router(prometheus.router)
    _add_error_handlers(app)
    _add_docs(app)
    _add_fallbacks(app)
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="web")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def bad_param(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    async def bad_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        detail = "; ".join(_problem(err) for err in errors)
        return JSONResponse({"detail": detail}, status_code=_validation_status(errors))

    async def store_failed(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": f"the store could not answer: {exc}"}, status_code=503)

    async def too_large(_request: Request, _exc: Exception) -> Response:
        return JSONResponse(
            {
                "detail": "the request body is larger than this route takes: control calls "
                f"take a small JSON object (at most {MAX_BODY_BYTES // 1024} KiB), an agent's "
                f"push at most {ingest.MAX_INGEST_BYTES // 2**20} MiB (see /docs)"
            },
            status_code=413,
        )

    app.add_exception_handler(ParamError, bad_param)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StoreError, store_failed)
    app.add_exception_handler(413, too_large)


_OUT_OF_RANGE = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
        "string_too_long",
        "too_long",
        "value_error",
    }
)
"""Errors of a well-formed body field whose value is out of range (422, docs/API.md)."""


def _validation_status(errors: Sequence[Mapping[str, Any]]) -> int:
    """422 when every problem is a body value out of range, else 400 (a parameter, or a body
    that does not fit the schema: missing, unknown or mistyped fields, not JSON)."""
    in_range = all(e["loc"][:1] == ("body",) and e["type"] in _OUT_OF_RANGE for e in errors)
    return 422 if errors and in_range else 400


def _problem(err: Mapping[str, Any]) -> str:
    """One validation error as `field: what is wrong (got <excerpt>)`."""
    if err["type"] == "json_invalid":
        why = err.get("ctx", {}).get("error", "")
        return f"the body is not valid JSON ({why}): send a JSON object"
    where = ".".join(_name(p) for p in err["loc"] if p not in ("query", "path", "body"))
    got = f" (got {excerpt(err['input'])})" if "input" in err else ""
    return f"{where}: {err['msg']}{got}"


def _name(part: int | str) -> str:
    """A location part; an unknown field's name is the caller's, so it is cut short too."""
    text = str(part)
    return text if len(text) <= EXCERPT_LENGTH else excerpt(text)


def _add_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from this server's own files (nothing loaded from the internet)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_UI_DIR}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI_DIR}/swagger-ui.css",
            swagger_favicon_url="/favicon.svg",
            # The validator badge would send the schema's URL to swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> RedirectResponse:
        return RedirectResponse("/docs")


def _add_fallbacks(app: FastAPI) -> None:
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """Browsers ask for /favicon.ico whatever the page says: answer with the SVG icon."""
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.api_route(
        "/api/{path:path}",
        methods=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def no_such_route(request: Request, path: str) -> Response:
        allowed = _allowed_methods(request.url.path)
        if allowed:
            raise HTTPException(
                405,
                f"{request.method} is not allowed on {excerpt(request.url.path)}: "
                f"use {' or '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        return JSONResponse(
            {"detail": f"no API route {excerpt('/api/' + path)}: see /docs for the routes"},
            status_code=404,
        )


def _allowed_methods(path: str) -> list[str]:
    """Methods of the API routes at `path`: reached from the catch-all above, which matches
    every method and so would hide Starlette's 405, it means the method was wrong."""
    inner = path.removeprefix(API_PREFIX)
    return sorted(
        {
            method
            for router in ROUTERS
            for route in router.routes
            if isinstance(route, APIRoute) and route.path_regex.match(inner)
            for method in route.methods or ()
        }
    )
