"""Serving the app with uvicorn inside an event loop the caller owns (`rackwatch run`'s).

The socket is bound first, so a port in use is a clear ConfigError instead of uvicorn's
`sys.exit`, and port 0 gives a free port (tests). uvicorn installs no signal handlers here:
the caller's stop event decides, and the pipeline drains after the server has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

from rackwatch.errors import ConfigError

STARTUP_TIMEOUT_S = 30.0


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process' signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; ConfigError saying what to do when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says TCP; without it Nagle and delayed ACKs hold each kept-alive answer ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pass another --port "
            "(or --host), or stop the program that holds it"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def uvicorn_config(app: ASGIApp) -> uvicorn.Config:
    """uvicorn settings for rackwatch: quiet, no access log, no per-message deflate (it
    compresses each client's copy separately, which would undo the fan-out's encode-once
    design for a thousand clients), small inbound WebSocket messages."""
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws_per_message_deflate=False,
        ws_max_size=1024 * 1024,  # larger messages are answered INVALID_FORMAT by the app
        timeout_graceful_shutdown=3,
    )


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` on host:port in the running loop; yield its URL once it accepts requests;
    on exit, close the connections and run the app's shutdown before returning."""
    sock = bind_socket(host, port)
    url = url_of(sock)
    server = EmbeddedServer(uvicorn_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it, if anything
                    raise ConfigError(f"the HTTP server on {url} did not start (see the log)")
                await asyncio.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
