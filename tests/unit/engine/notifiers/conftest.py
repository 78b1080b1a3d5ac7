"""Real local servers for the notifier tests: an HTTP server that records what it receives
(and can fail or hang on demand) and a self-signed certificate for the TLS tests; the SMTP
server (aiosmtpd) is started by its test module."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from notifier_support import Certificate, Recorder, handler, make_notification

from rackwatch.engine.notifiers import Notification


@pytest.fixture
def notification() -> Notification:
    return make_notification()


def _serve(recorder: Recorder, path: str) -> Iterator[Recorder]:
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(recorder))
    server.daemon_threads = True
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield recorder
    recorder.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def http_server() -> Iterator[Recorder]:
    yield from _serve(Recorder(url=""), "/hooks/T000/SECRET")


@pytest.fixture
def hanging_server() -> Iterator[Recorder]:
    """A second HTTP server that takes requests and never answers (until teardown)."""
    yield from _serve(Recorder(url="", hang=True), "/slow")


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)
