"""One entity-glob rule for every route (docs/API.md, Selectors; issue 8, item 9): `**` takes
any number of segments, also none, so `<server>/**` holds the server itself, on /live,
/series, /events, /states, /alerts, /fans and WebSocket subscriptions alike. And a bad
pattern neither stalls the event loop nor costs more than a few milliseconds to select with
at 26,405 series."""

from __future__ import annotations

import fnmatch
import gc
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from api_support import END_MS, START_MS, Filled
from room_support import FAILED_FAN, Room, build_room, make_tokens, serving_rooms
from websockets.sync.client import connect

from rackwatch.api import ApiContext
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.model import Event, EventKind, SeriesRegistry, Severity
from rackwatch.model.entity import MAX_PATTERN_ANY_DEPTH, MAX_PATTERN_SEGMENTS

S03 = "c01/r01/s03"
ISSUE_PATTERN = "/".join(["**"] * 23 + ["x"])
"""The issue's request: 24 segments, 81 characters, once accepted."""
WORST_ALLOWED = "/".join(
    ["**", "*[a-z]*[0-9]*"] * MAX_PATTERN_ANY_DEPTH
    + ["*"] * (MAX_PATTERN_SEGMENTS - 2 * MAX_PATTERN_ANY_DEPTH - 1)
    + ["*?*?*?*?*?*?*?*?*x"]
)


def rule(path: str, pattern: str) -> bool:
    """The rule, written plainly (and apart from the code under test)."""

    def match(segments: list[str], globs: list[str]) -> bool:
        if not globs:
            return not segments
        if globs[0] == "**":
            return any(match(segments[i:], globs[1:]) for i in range(len(segments) + 1))
        return (
            bool(segments)
            and fnmatch.fnmatchcase(segments[0], globs[0])
            and match(segments[1:], globs[1:])
        )

    return match(path.split("/"), pattern.split("/"))


@pytest.fixture(scope="module")
def room(filled: Filled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    """The fan-fail room, with events on a server itself, beside and under it."""
    filled.store.write_events(
        [
            Event(START_MS + 1000, EventKind.STATE_CHANGED, S03, Severity.WARNING),
            Event(START_MS + 2000, EventKind.STATE_CHANGED, f"{S03}/fan2"),
            Event(START_MS + 3000, EventKind.STATE_CHANGED, "c01/r01/s04"),
            Event(START_MS + 4000, EventKind.STATE_CHANGED, "c01/r01/s030"),
        ]
    )
    tokens = make_tokens(tmp_path_factory.mktemp("tokens"))
    with serving_rooms() as serve:
        yield build_room(filled, tokens, serve)


def _get(room: Room, path: str, **params: object) -> Any:
    response = room.request("GET", path, token=None, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def live(room: Room, entity: str) -> set[str]:
    return set(_get(room, "/api/v1/live", entity=entity)["entities"])


def series(room: Room, entity: str) -> set[str]:
    found = _get(room, "/api/v1/series", entity=entity, step="1h", **{"from": START_MS})
    return {s["entity"] for s in found["series"]}


def events(room: Room, entity: str) -> set[str]:
    found = _get(room, "/api/v1/events", entity=entity, **{"from": START_MS, "to": END_MS})
    return {e["entity"] for e in found["events"]}


def states(room: Room, entity: str) -> set[str]:
    return set(_get(room, "/api/v1/states", entity=entity)["entities"])


def alerts(room: Room, entity: str) -> set[str]:
    found = _get(room, "/api/v1/alerts", entity=entity, state="all")["alerts"]
    return {a["entity"] for a in found}


def fans(room: Room, entity: str) -> set[str]:
    return {f["entity"] for f in _get(room, "/api/v1/fans", entity=entity)["fans"]}


def websocket(room: Room, entity: str) -> set[str]:
    """The entities of the newest values sent on subscribing (none sent: none matched)."""
    found: set[str] = set()
    with connect(room.server.ws_url) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connection"
        ws.send(json.dumps({"type": "subscribe", "entity": entity}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        ws.send(json.dumps({"type": "ping"}))  # answered after the subscription's snapshot
        while (message := json.loads(ws.recv(timeout=5)))["type"] != "pong":
            if message["type"] == "monitoring_data":
                found |= set(message["data"])
    return found


Route = Callable[[Room, str], set[str]]
ROUTES: list[tuple[Route, str]] = [
    (live, S03),
    (live, FAILED_FAN),
    (series, S03),
    (series, FAILED_FAN),
    (events, S03),  # failed before: the SQL prefilter `c01/r01/s03/` dropped the server
    (events, FAILED_FAN),
    (states, S03),
    (states, FAILED_FAN),
    (alerts, FAILED_FAN),
    (fans, FAILED_FAN),
    (websocket, S03),
    (websocket, FAILED_FAN),
]


@pytest.mark.parametrize(("route", "own"), ROUTES, ids=[f"{r.__name__}-{e}" for r, e in ROUTES])
def test_one_rule_on_every_route(room: Room, route: Route, own: str) -> None:
    """`<entity>/**` is the entity and everything under it; `*` takes exactly one segment;
    every route answers each glob with what the rule picks from its whole answer."""
    everything = route(room, "**")
    assert own in everything
    assert route(room, f"{own}/**") >= {own}
    for pattern in (f"{own}/**", f"{own}/*", own, "c01/*/s0[3]/**", "**/fan1", "c01/**/**/s03"):
        assert route(room, pattern) == {p for p in everything if rule(p, pattern)}, pattern


def test_the_server_page_sees_the_servers_own_events(room: Room) -> None:
    assert events(room, f"{S03}/**") == {S03, f"{S03}/fan2", FAILED_FAN}
    assert events(room, "c01/r01/s0[3]/**") == {S03, f"{S03}/fan2", FAILED_FAN}


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (ISSUE_PATTERN, "segments"),
        ("/".join(["**", "a"] * (MAX_PATTERN_ANY_DEPTH + 1)), "`**`"),
        ("/".join(["c01"] * (MAX_PATTERN_SEGMENTS + 1)), "segments"),
        ("c" * 300, "characters"),
    ],
)
def test_patterns_past_the_limits_are_400_on_every_route(
    room: Room, pattern: str, says: str
) -> None:
    for path in ("/api/v1/live", "/api/v1/series", "/api/v1/events", "/api/v1/states"):
        response = room.request("GET", path, token=None, params={"entity": pattern})
        assert response.status_code == 400, (path, response.text)
        detail = response.json()["detail"]
        assert says in detail and len(detail) < 400, detail
    with connect(room.server.ws_url) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "subscribe", "entity": pattern}))
        answer = json.loads(ws.recv(timeout=5))
        assert answer["type"] == "error" and says in json.dumps(answer)


def test_the_worst_allowed_pattern_is_accepted(room: Room) -> None:
    assert len(WORST_ALLOWED.split("/")) == MAX_PATTERN_SEGMENTS
    assert live(room, WORST_ALLOWED) == set()


def test_selecting_over_26405_series_with_a_bad_pattern_takes_milliseconds(filled: Filled) -> None:
    """`ApiContext.select` runs on the event loop (GET /live, /series): before, the issue's
    pattern over the series of 2,000 servers took 168 s there."""
    registry = SeriesRegistry()
    registry.intern_many([("room", f"m{i}") for i in range(3)] + [("room/crac1", "m1")] * 2)
    registry.intern("room/crac1", "m2")
    for c in range(1, 101):
        for r in (1, 2):
            registry.intern_many([(f"c{c:02}/r{r:02}/pdu", m) for m in ("m1", "m2")])
            for s in range(1, 11):
                server = f"c{c:02}/r{r:02}/s{s:02}"
                registry.intern_many([(server, f"m{i}") for i in range(7)])
                fans = [(f"{server}/fan{f}", f"fan_{i}") for f in (1, 2) for i in (1, 2, 3)]
                registry.intern_many(fans)
    assert len(registry) == 26_405  # as the twin's 2,000 servers
    ctx = ApiContext(store=filled.store, registry=registry, live=LiveState(0), bus=MemoryBus())
    assert len(ctx.select("c01/r01/s01/**", None)) == 13  # builds the index once
    times = []
    for pattern in (ISSUE_PATTERN, WORST_ALLOWED, "**/s0[1-3]/**/fan?", "c01/**/x/**/y/**"):
        start = time.perf_counter()
        ctx.select(pattern, ["fan_*", "m?"])
        times.append(time.perf_counter() - start)
    assert max(times) < 0.02, times


def test_status_answers_while_the_worst_patterns_are_requested(room: Room) -> None:
    """GET /status keeps answering (p99 under 500 ms; about 35 ms here, 64 ms under CI's
    load) while other clients send the issue's pattern and the worst one allowed to every
    glob route (before: /fans and /live held the loop for seconds per request), and 8 MB
    bodies without a token (before: parsed before the 401). The bound catches the loop held
    for seconds, not a few ms of a busy machine."""
    stop = threading.Event()
    sent = [0]

    def client() -> httpx.Client:
        return httpx.Client(base_url=room.server.url, timeout=30)

    def abuse(paths: list[str]) -> None:
        with client() as http:
            while not stop.is_set():
                for path in paths:
                    for pattern in (ISSUE_PATTERN, WORST_ALLOWED):
                        http.get(path, params={"entity": pattern})
                        sent[0] += 1

    def big_bodies() -> None:
        """Item 4: 8 MB bodies without a token, refused before they are read."""
        with client() as http:
            while not stop.is_set():
                response = http.post(
                    "/api/v1/twin/faults",
                    content=iter([b" " * 65_536] * 128),
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code in (401, 403, 413)
                sent[0] += 1

    routes = ["fans", "live", "states", "alerts", "series", "events"]
    # The server shares this process with the whole test session: move what the session
    # holds out of the collector's reach, so that a full collection measures the server's
    # garbage, not the test runner's (a served rackwatch has no such heap).
    gc.collect()
    gc.freeze()
    threads = [
        threading.Thread(target=abuse, args=([f"/api/v1/{r}" for r in routes],)),
        threading.Thread(target=big_bodies),
    ]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        with client() as http:
            while sent[0] < 4:
                time.sleep(0.01)
            for _ in range(20):
                start = time.perf_counter()
                assert http.get("/api/v1/status").status_code == 200
                latencies.append(time.perf_counter() - start)
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        gc.unfreeze()
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    assert sent[0] >= 20
    assert p99 < 0.5, (
        f"p99 {p99 * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms"
    )
