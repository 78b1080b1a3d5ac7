"""/api/v1/reports: the archive list, one file in its media type, names that would leave the
archive refused, and POST making a report (control token) in a worker thread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_support import NOW_MS, Filled, LiveApp, make_ctx
from room_support import Tokens, make_tokens

from rackwatch.api import create_app
from rackwatch.engine.reports import ReportArchive, Reporter


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    return make_tokens(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def site(
    filled: Filled, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveApp, Reporter]]:
    archive = ReportArchive(tmp_path_factory.mktemp("data") / "reports")
    reporter = Reporter(
        filled.store, archive, ZoneInfo("UTC"), ("html", "json", "csv"), clock_ms=lambda: NOW_MS
    )
    app = LiveApp(create_app(make_ctx(filled, tokens=tokens.store, reports=reporter)))
    yield app, reporter
    app.close()


@pytest.fixture(scope="module")
def http(site: tuple[LiveApp, Reporter]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site[0].url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def made(http: httpx.Client, tokens: Tokens) -> dict:
    # the fan-fail twin's three hours are on 2026-01-01 (UTC); "now" is 03:01 that day
    done = http.post(
        "/api/v1/reports",
        params={"period": "day", "date": "2026-01-01"},
        headers=tokens.header("control"),
    )
    assert done.status_code == 201, done.text
    return done.json()


def test_post_makes_and_archives_the_report(made: dict) -> None:
    report = made["report"]
    assert report["name"] == "day-2026-01-01" and report["period"] == "day"
    assert report["formats"] == ["html", "json", "csv"]
    assert report["files"]["json"]["url"] == "/api/v1/reports/day-2026-01-01.json"
    assert made["seconds"] > 0


def test_the_list_is_the_archive(http: httpx.Client, made: dict) -> None:
    listed = http.get("/api/v1/reports").json()
    assert listed["timezone"] == "UTC"
    assert [r["name"] for r in listed["reports"]] == [made["report"]["name"]]
    assert http.get("/api/v1/reports", params={"period": "week"}).json()["reports"] == []
    bad = http.get("/api/v1/reports", params={"period": "year"})
    assert bad.status_code == 400 and "day, week or month" in bad.json()["detail"]


def test_each_file_in_its_media_type(http: httpx.Client, made: dict) -> None:
    page = http.get("/api/v1/reports/day-2026-01-01.html")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert b"c01/r01/s0" in page.content and b"http://" not in page.content
    doc = http.get("/api/v1/reports/day-2026-01-01.json")
    assert doc.headers["content-type"] == "application/json"
    assert json.loads(doc.content)["n_machines"] == 5
    table = http.get("/api/v1/reports/day-2026-01-01.csv")
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in table.headers["content-disposition"]
    assert table.text.startswith("section,time,entity,metric,statistic,value,unit")
    assert made


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/reports/..%2F..%2Ftokens.json",
        "/api/v1/reports/..%2Freports%2Fday%2Fday-2026-01-01.json",
        "/api/v1/reports/day-2026-01-01.json%00",
        "/api/v1/reports/tokens.json",
        "/api/v1/reports/day-2026-01-01",
        "/api/v1/reports/day-2026-01-02.json",
        "/api/v1/reports/%2Fetc%2Fpasswd",
    ],
)
def test_names_outside_the_archive_are_not_found(http: httpx.Client, path: str, made: dict) -> None:
    response = http.get(path)
    assert response.status_code == 404, response.text
    assert (
        "/api/v1/reports" in response.json()["detail"]
        or "no API route" in response.json()["detail"]
    )
    assert made


def test_making_a_report_needs_a_control_token(http: httpx.Client, tokens: Tokens) -> None:
    for token, status in ((None, 401), ("read", 403), ("revoked", 401)):
        response = http.post(
            "/api/v1/reports", params={"period": "day"}, headers=tokens.header(token)
        )
        assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"period": "year"}, "day, week or month"),
        ({"period": "day", "date": "01/02/2026"}, "YYYY-MM-DD"),
        ({"period": "month", "date": "2026-02-30"}, "not a calendar day"),
        ({"period": "day", "date": "2026-01-02"}, "has not started"),
        ({"period": "week", "date": "0001-01-01"}, "before 1970"),
        ({}, "period"),
    ],
)
def test_bad_requests_say_what_to_fix(
    http: httpx.Client, tokens: Tokens, params: dict, said: str
) -> None:
    response = http.post("/api/v1/reports", params=params, headers=tokens.header("control"))
    assert response.status_code == 400 and said in response.json()["detail"], response.text


def test_without_a_reporter_the_routes_say_so(filled: Filled) -> None:
    app = LiveApp(create_app(make_ctx(filled)))
    try:
        response = httpx.get(app.url + "api/v1/reports", timeout=10)
        assert response.status_code == 503 and "reports" in response.json()["detail"]
    finally:
        app.close()
