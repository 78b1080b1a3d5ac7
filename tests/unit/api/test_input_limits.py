"""Issue 8 at the API: bad input is a short 4xx naming the field, never a 500 nor an echo of
the input; access is checked before a body is read; bodies are capped; a wrong method is a
405 with Allow; a long range over young data is answered.

Requests go in-process through `httpx.ASGITransport`, so a test can count how much of a body
the app pulled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_support import Filled, make_ctx
from room_support import Tokens, make_tokens

from rackwatch.api import create_app
from rackwatch.api.app import MAX_BODY_BYTES
from rackwatch.api.params import ParamError, parse_duration_ms, parse_step, parse_time

HUGE = "1" + "0" * 400
CHUNK = 64 * 1024
JSON = "application/json"
SHORT_DETAIL = 300
"""A refusal quotes bad input as an excerpt: its detail stays short whatever was sent."""


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    return make_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def app(filled: Filled, tokens: Tokens) -> Any:
    return create_app(make_ctx(filled, tokens=tokens.store))


class Body:
    """A request body sent in chunks without Content-Length, counting the chunks pulled."""

    def __init__(self, n_chunks: int, chunk: bytes = b" " * CHUNK) -> None:
        self.n_chunks = n_chunks
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.n_chunks):
            self.pulled += 1
            yield self.chunk


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://rackwatch") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(go())


def control(tokens: Tokens) -> dict[str, str]:
    return tokens.header("control")


# --- numbers: bounded, finite, and a 4xx naming the field (never a 500) ----------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/v1/series?from={HUGE}", "from"),
        (f"/api/v1/series?to={HUGE}", "to"),
        (f"/api/v1/series?step={HUGE}", "step"),
        (f"/api/v1/series?step={HUGE}s", "step"),
        (f"/api/v1/series?from=-{HUGE}s", "from"),
        (f"/api/v1/series?from=-{HUGE}", "from"),
        (f"/api/v1/series?step={'9' * 5000}", "step"),
        ("/api/v1/series?step=%C2%B2", "step"),  # "²": a digit to str.isdigit, not to int()
        (f"/api/v1/events?from={HUGE}", "from"),
        (f"/api/v1/events?to=-{HUGE}h", "to"),
        (f"/api/v1/events?limit={HUGE}", "limit"),
        (f"/api/v1/events?limit={'9' * 5000}", "limit"),
    ],
)
def test_a_huge_number_in_a_query_is_a_short_400_naming_it(app: Any, path: str, field: str) -> None:
    response = call(app, "GET", path)
    assert response.status_code == 400, response.text[:200]
    detail = response.json()["detail"]
    assert detail.startswith(field) and len(detail) < SHORT_DETAIL


@pytest.mark.parametrize(
    ("text", "parse"),
    [
        (HUGE + "ms", lambda t: parse_duration_ms(t)),
        ("9" * 60 + "w", lambda t: parse_duration_ms(t)),
        ("-" + "9" * 60 + "d", lambda t: parse_time(t, now_ms=0)),
        ("9" * 60, lambda t: parse_step(t)),
    ],
)
def test_parsers_refuse_overflowing_values_with_a_param_error(text: str, parse: Any) -> None:
    with pytest.raises(ParamError):
        parse(text)


def test_fault_start_beyond_year_9999_is_a_422_naming_start_ms(app: Any, tokens: Tokens) -> None:
    body = {"kind": "fan_off", "entity": "c01/r01/s01/fan1", "start_ms": int(HUGE)}
    response = call(app, "POST", "/api/v1/twin/faults", json=body, headers=control(tokens))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("start_ms") and len(detail) < SHORT_DETAIL


# --- bodies: access first, a cap, no echo ----------------------------------------------------


def _body_routes(app: Any) -> list[tuple[str, str]]:
    """Every operation that takes a request body, from the OpenAPI schema."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


def test_every_route_with_a_body_checks_access_before_reading_it(app: Any) -> None:
    routes = _body_routes(app)
    assert len(routes) >= 4  # fans mode and level, maintenance, twin faults
    for method, path in routes:
        body = Body(n_chunks=1600)  # 100 MB, if it were read
        url = path.replace("{", "").replace("}", "")
        response = call(app, method, url, content=body, headers={"Content-Type": JSON})
        assert response.status_code == 401, f"{method} {path}: {response.text[:200]}"
        assert response.headers["www-authenticate"] == "Bearer"
        assert body.pulled == 0, f"{method} {path} read {body.pulled} chunks before the 401"


def test_a_chunked_body_over_the_cap_is_a_413_and_is_not_read_to_its_end(
    app: Any, tokens: Tokens
) -> None:
    body = Body(n_chunks=160)  # 10 MB without Content-Length
    headers = {**control(tokens), "Content-Type": JSON}
    response = call(app, "POST", "/api/v1/fans/level", content=body, headers=headers)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["detail"]
    assert body.pulled <= MAX_BODY_BYTES // CHUNK + 2


def test_a_body_declared_over_the_cap_is_a_413_before_it_is_read(app: Any, tokens: Tokens) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    headers = {**control(tokens), "Content-Type": JSON}
    response = call(app, "POST", "/api/v1/twin/faults", content=body, headers=headers)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "k" * 60_000, "entity": "c01"},
        {"kind": "fan_off", "entity": "c01/" + "r" * 60_000},
        {"kind": "fan_off", "entity": "c01", "x" * 60_000: 1},
        {"kind": "load_burst", "entity": "c01", "params": {"duration_s": "9" * 60_000}},
        {"kind": "load_burst", "entity": "c01", "params": {"y" * 60_000: 1}},
    ],
    ids=["kind", "entity", "unknown field", "param value", "param name"],
)
def test_a_refusal_quotes_bad_input_as_a_short_excerpt(
    app: Any, tokens: Tokens, body: dict[str, Any]
) -> None:
    response = call(app, "POST", "/api/v1/twin/faults", json=body, headers=control(tokens))
    assert response.status_code in (400, 422)
    assert len(response.json()["detail"]) < SHORT_DETAIL


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/series", {"from": "x" * 20_000}),
        ("/api/v1/series", {"metric": "m" * 20_000}),
        ("/api/v1/inventory", {"kind": "K" * 20_000}),
        ("/api/v1/events", {"kind": "K" * 20_000}),
    ],
    ids=["from", "metric", "inventory kind", "event kind"],
)
def test_a_long_query_value_is_not_echoed(app: Any, path: str, query: dict[str, str]) -> None:
    response = call(app, "GET", path, params=query)
    assert response.status_code == 400
    assert len(response.json()["detail"]) < SHORT_DETAIL


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/series", "GET"),
        ("POST", "/api/v1/inventory", "GET"),
        ("PUT", "/api/v1/fans/level", "POST"),
        ("GET", "/api/v1/fans/mode", "POST"),
        ("PATCH", "/api/v1/twin/faults", "GET, POST"),
        ("GET", "/api/v1/maintenance/c01/r01/s01", "DELETE"),
    ],
)
def test_a_wrong_method_is_a_405_with_allow(
    app: Any, tokens: Tokens, method: str, path: str, allow: str
) -> None:
    response = call(app, method, path, headers=control(tokens))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert method in response.json()["detail"]


def test_an_unknown_api_route_is_still_a_404(app: Any) -> None:
    response = call(app, "DELETE", "/api/v1/nothing-here")
    assert response.status_code == 404 and "no API route" in response.json()["detail"]


# --- series size: from the data's extent -----------------------------------------------------


def test_a_long_range_over_young_data_is_answered(app: Any) -> None:
    """The store holds 3 hours: a month of 1-minute buckets is 180 rows per series, not 43,200
    (the range's estimate, 3.1 million rows for 72 series, was refused)."""
    response = call(app, "GET", "/api/v1/series", params={"from": "-30d", "step": "1m"})
    assert response.status_code == 200, response.text[:200]
    series = response.json()["series"]
    assert len(series) == 72 and max(len(s["ts"]) for s in series) == 180


@pytest.fixture(scope="module")
def small_app(filled: Filled) -> Any:
    return create_app(make_ctx(filled, max_points=10_000))


def test_the_guard_still_refuses_what_the_store_could_really_return(small_app: Any) -> None:
    response = call(small_app, "GET", "/api/v1/series", params={"from": "-30d", "step": "1m"})
    assert response.status_code == 400 and "rows" in response.json()["detail"]


def test_a_range_after_the_newest_sample_is_answered_empty_not_refused(small_app: Any) -> None:
    params = {"from": "2030-01-01T00:00:00Z", "to": "2031-01-01T00:00:00Z"}
    response = call(small_app, "GET", "/api/v1/series", params=params)
    assert response.status_code == 200
    assert all(s["ts"] == [] for s in response.json()["series"])
