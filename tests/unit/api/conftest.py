"""Fixtures for the API tests; the helpers are in api_support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_support import Filled, LiveApp, fill_store, make_ctx
from fastapi import FastAPI

from rackwatch.api import create_app


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    data = fill_store(tmp_path_factory.mktemp("store"))
    yield data
    data.store.close()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], LiveApp]]:
    """Start apps for one test; all are stopped at its end."""
    started: list[LiveApp] = []

    def start(app: FastAPI) -> LiveApp:
        live_app = LiveApp(app)
        started.append(live_app)
        return live_app

    yield start
    for live_app in started:
        live_app.close()


@pytest.fixture(scope="module")
def api(filled: Filled) -> Iterator[LiveApp]:
    """One read-only app over the filled store, shared by a module's REST tests."""
    live_app = LiveApp(create_app(make_ctx(filled)))
    yield live_app
    live_app.close()
