"""Helpers for the notifier tests: a sample notification, the recording HTTP server's state,
a test certificate and free ports."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from rackwatch.engine.notifiers import Notification
from rackwatch.model import Severity


def make_notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "kind": "alert.fired",
        "alert_id": "0123456789abcdef",
        "ts_ms": 1_767_227_410_000,
        "entity": "c01/r01/s03/fan1",
        "rule": "fan-stopped",
        "metric": "fan_rpm",
        "unit": "rpm",
        "level": Severity.CRITICAL,
        "value": 0.0,
        "threshold": 100.0,
        "message": "Fan stopped while commanded on — c01/r01/s03/fan1: fan_rpm = 0 rpm",
    }
    values.update(overrides)
    return Notification(**values)


@dataclass
class Recorder:
    """What the HTTP server received, and how it should answer."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        return [r["json"] for r in self.requests]


def handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with recorder.lock:
                recorder.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                failing = len(recorder.requests) <= recorder.fail_first
            if recorder.hang:
                recorder.release.wait(10)
            status = recorder.fail_status if failing else 200
            self.send_response(status)
            if failing and recorder.retry_after is not None:
                self.send_header("Retry-After", recorder.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            return

    return Handler


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
