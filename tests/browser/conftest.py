"""The dashboard end to end: the real `rackwatch run` in a subprocess, Debian's Chromium driven by
Playwright's sync API (docs: /work/shared/TESTING.md, recipe 1).

pytest-playwright is deliberately not used: its fixtures and a hand-made `sync_playwright()`
cannot share one run. Screenshots go to `$RACKWATCH_SCREENSHOTS` when set (e.g. `screenshots/`,
gitignored), else to a pytest temporary directory.

No page may load anything from the internet (server rooms are often air-gapped): every tab
aborts each request, and each WebSocket, whose host is not this machine, and the test fails if
a page attempted one (`Tab.assert_no_errors`, and again when the tab is closed).

Control actions need a control token: the first `rackwatch run` writes one to
`<data_dir>/control-token.txt` (`control_token`); `read_token` is made with `rackwatch token
create`. Against `RACKWATCH_TEST_URL`, give them in `RACKWATCH_TEST_TOKEN` and
`RACKWATCH_TEST_READ_TOKEN`, or the tests that need them are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("RACKWATCH_CHROMIUM", "/usr/bin/chromium"))
# Playwright adds most of these itself; keeping them explicit documents what the run relies on.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
SERVER_START_TIMEOUT_S = 60.0
TOKEN_FILE = "control-token.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_local(url: str) -> bool:
    """Whether a page's request stays on this machine (data: and blob: URLs never leave it)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without the browser, skip the browser tests at once, before any server is started."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def server_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rackwatch-data")


@contextlib.contextmanager
def running_server(args: list[str], data_dir: Path) -> Iterator[str]:
    """`rackwatch run <args>` with `data_dir` on a free loopback port, until the block ends;
    its base URL once it answers /api/v1/status."""
    port = free_port()
    log_path = data_dir / "server.log"
    command = [sys.executable, "-m", "rackwatch", "run", *args]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(
                        f"rackwatch run exited with {proc.returncode}:\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
                with contextlib.suppress(OSError, ValueError):
                    get_json(f"{base}/api/v1/status", timeout=1.0)
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"rackwatch run did not answer /api/v1/status on {base}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()  # by PID, the process this fixture started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture(scope="session")
def live_server(server_data_dir: Path) -> Iterator[str]:
    """`rackwatch run` on a free loopback port: the fan-fail twin at 20x, API and pages.

    `RACKWATCH_TEST_URL` points the tests at a server already running instead (debugging).
    """
    existing = os.environ.get("RACKWATCH_TEST_URL")
    if existing:
        yield existing.rstrip("/")
        return
    with running_server(["--scenario", "fan-fail", "--speed", "20"], server_data_dir) as base:
        yield base


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[[list[str], Path], str]]:
    """`start_server(args, data_dir)`: one more `rackwatch run`, with settings of its own
    (`--config`...); its base URL. Every one is stopped when the session ends."""
    with contextlib.ExitStack() as stack:
        yield lambda args, data_dir: stack.enter_context(running_server(args, data_dir))


def create_token(data_dir: Path, scope: str) -> str:
    """A new token, made the documented way (`rackwatch token create`); the running server
    reads the token store at each call, so it accepts the token at once."""
    command = [sys.executable, "-m", "rackwatch", "token", "create", "--scope", scope]
    command += ["--data-dir", str(data_dir), "--name", "browser tests"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    lines = [line.strip() for line in out.splitlines()]
    created = next(i for i, line in enumerate(lines) if "created" in line)
    return lines[created + 1]


def _token(request: pytest.FixtureRequest, data_dir: Path, scope: str) -> str:
    if os.environ.get("RACKWATCH_TEST_URL"):
        variable = f"RACKWATCH_TEST_{'TOKEN' if scope == 'control' else 'READ_TOKEN'}"
        token = os.environ.get(variable, "")
        if not token:
            pytest.skip(f"{variable} is not set for the server at RACKWATCH_TEST_URL")
        return token
    request.getfixturevalue("live_server")  # started first: its first run writes the token file
    path = data_dir / TOKEN_FILE
    if scope == "control" and path.exists():
        return path.read_text(encoding="utf-8").strip()
    return create_token(data_dir, scope)


@pytest.fixture(scope="session")
def control_token(request: pytest.FixtureRequest, server_data_dir: Path) -> str:
    """The secret of a `control` token the server accepts."""
    return _token(request, server_data_dir, "control")


@pytest.fixture(scope="session")
def new_token() -> Callable[[Path, str], str]:
    """`new_token(data_dir, scope)`: a token of that scope for the server of `data_dir`."""
    return create_token


@pytest.fixture(scope="session")
def read_token(request: pytest.FixtureRequest, server_data_dir: Path) -> str:
    """The secret of a `read` token: good for GET routes, refused (403) on control routes."""
    return _token(request, server_data_dir, "read")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: the sync API keeps an event loop running in this thread while it is open,
    # which would break every later test that calls asyncio.run().
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("RACKWATCH_SCREENSHOTS")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class Tab:
    """A page with everything it said on the console, so a test can assert there was no error."""

    page: Any
    errors: list[str] = field(default_factory=list)
    # Requests to other machines that the tab attempted (and that were aborted).
    external: list[str] = field(default_factory=list)

    def assert_no_errors(self, allow: str | None = None) -> None:
        """No console error, apart from those matching the regular expression `allow` (the
        browser logs every refused request, e.g. a 401 that a test provokes on purpose), and
        no request that left this machine."""
        self.assert_local_only()
        errors = [e for e in self.errors if not (allow and re.search(allow, e))]
        assert errors == [], "console errors:\n" + "\n".join(errors)

    def assert_local_only(self) -> None:
        assert self.external == [], "requests to other machines (aborted):\n" + "\n".join(
            self.external
        )


@pytest.fixture
def open_tab(browser: Any) -> Iterator[Any]:
    """`open_tab(width, height)` -> Tab in a fresh context (own cache, own viewport)."""
    contexts: list[Any] = []
    tabs: list[Tab] = []

    def open_(width: int = 1366, height: int = 900, **options: Any) -> Tab:
        # Reduced motion: no colour transitions, so a screenshot shows the settled page.
        options.setdefault("reduced_motion", "reduce")
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page)
        tabs.append(tab)

        # Every request leaving this machine is aborted and remembered: no page may depend on
        # the internet. Page-level routes that a test adds still see the local ones first.
        def guard(route: Any) -> None:
            url = route.request.url
            if is_local(url):
                route.fallback()
            else:
                tab.external.append(f"{route.request.method} {url}")
                route.abort("blockedbyclient")

        def guard_socket(ws: Any) -> None:
            tab.external.append(f"WebSocket {ws.url}")
            ws.close()

        context.route("**/*", guard)
        context.route_web_socket(lambda url: not is_local(url), guard_socket)

        def on_console(message: Any) -> None:
            if message.type == "error":
                tab.errors.append(f"console: {message.text} ({message.location.get('url')})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
        page.set_default_timeout(20_000)
        return tab

    yield open_
    for context in contexts:
        context.close()
    for tab in tabs:  # also for a test that never called assert_no_errors
        tab.assert_local_only()
