"""Alerts at scale, in a real Chromium against the real server (fixtures in conftest.py).

A room-wide fault raises one alert per server: the active-alerts panel groups them by rule with
a count, and acknowledges many at once (POST /alerts/ack). The alert history page
(alerts.html) lists past and present alerts with filters and pages (GET /alerts/history).

The first test answers GET /alerts itself with 16 alerts, more than the 5-server room can
raise; the others use real alerts: a stuck inlet sensor (40 °C) on s02 and s03 fires
`inlet-temperature-high` on both (the physics is untouched, so the fans and the other tests do
not notice).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TOKEN_KEY = "rackwatch.controlToken"
LIVE_INDICATOR = '#conn[data-state="live"]'
RULE = "inlet-temperature-high"
STUCK = ("c01/r01/s02", "c01/r01/s03")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def post_json(url: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def with_token(tab: Any, token: str) -> None:
    tab.page.add_init_script(f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)})")


def made_up_alert(i: int, rule: str, entity: str, level: str, fired_ts_ms: int) -> dict[str, Any]:
    return {
        "id": f"{i:016x}",
        "timestamp": "2026-11-30T12:00:00.000Z",
        "ts_ms": fired_ts_ms,
        "entity": entity,
        "rule": rule,
        "metric": "inlet_temperature_celsius",
        "unit": "celsius",
        "value": 33.5,
        "threshold": 27.0,
        "level": level,
        "status": "firing",
        "message": f"{rule} on {entity}",
        "fired_ts_ms": fired_ts_ms,
        "acknowledged_by": None,
        "acknowledged_ts_ms": None,
        "resolved_ts_ms": None,
        "is_failure": False,
        "is_suppressed": False,
        "n_reopened": 0,
    }


def test_alert_groups_scale_and_bulk_acknowledge(
    live_server: str, control_token: str, open_tab: Any, screenshot_dir: Path
) -> None:
    t0 = 1_796_000_000_000
    alerts = [
        made_up_alert(r, RULE, f"c01/r{r:02d}/s01", "WARNING", t0 + r * 1000) for r in range(1, 16)
    ]
    alerts.append(made_up_alert(99, "disk-failed", "c01/r01/s05", "CRITICAL", t0))
    by_id = {a["id"]: a for a in alerts}
    acks: list[list[str]] = []

    def answer_alerts(route: Any) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        groups = [
            {"rule": "disk-failed", "level": "CRITICAL", "count": 1, "entities": ["c01/r01/s05"],
             "oldest_fired_ts_ms": t0},
            {"rule": RULE, "level": "WARNING", "count": 15,
             "entities": [a["entity"] for a in alerts[:10]], "oldest_fired_ts_ms": t0 + 1000},
        ]  # fmt: skip
        body = {"alerts": list(by_id.values()), "groups": groups}
        route.fulfill(content_type="application/json", body=json.dumps(body))

    def answer_ack(route: Any) -> None:
        ids = json.loads(route.request.post_data)["ids"]
        acks.append(ids)
        for i in ids:
            by_id[i] = {**by_id[i], "status": "acknowledged", "acknowledged_by": "ops (token x)"}
        body = {"acknowledged": ids, "not_found": []}
        route.fulfill(content_type="application/json", body=json.dumps(body))

    tab = open_tab()
    with_token(tab, control_token)
    tab.page.route(re.compile(r"/api/v1/alerts(\?|$)"), answer_alerts)
    tab.page.route(re.compile(r"/api/v1/alerts/ack$"), answer_ack)
    tab.page.goto(live_server)

    # Two lines, not sixteen: the critical group first; the big one folded, with its count.
    groups = tab.page.locator("#alerts > li.alert-group")
    groups.nth(1).wait_for()
    assert groups.count() == 2
    assert groups.evaluate_all("gs => gs.map(g => g.dataset.rule)") == ["disk-failed", RULE]
    assert tab.page.text_content("#alerts-count") == "16"
    big = tab.page.locator(f'#alerts li.alert-group[data-rule="{RULE}"]')
    assert big.get_attribute("data-count") == "15"
    assert big.locator(".group-count").text_content() == "15"
    assert big.locator(".alert-level").first.text_content() == "warning"
    assert big.locator(".group-summary").text_content() == (
        "15 entities: c01/r01/s01, c01/r02/s01, c01/r03/s01 and 12 more"
    )
    assert big.locator(".group-items").is_hidden()
    small = tab.page.locator('#alerts li.alert-group[data-rule="disk-failed"]')
    assert small.locator("li.alert").is_visible()
    # The panel stays short: the 15 alerts take one line until opened.
    assert tab.page.locator("#alerts li.alert:visible").count() == 1

    big.locator(".group-toggle").click()
    assert big.locator("li.alert:visible").count() == 15
    assert big.locator(".group-toggle").get_attribute("aria-expanded") == "true"
    tab.page.screenshot(path=screenshot_dir / "overview-alert-groups.png", full_page=True)
    big.locator(".group-toggle").click()
    assert big.locator(".group-items").is_hidden()

    # Select the group: 15 selected, "select all" is mixed; then all 16.
    ack = tab.page.locator("#alerts-ack-selected")
    assert ack.is_disabled()
    big.locator(".group-select").check()
    assert ack.text_content() == "Acknowledge selected (15)"
    assert tab.page.locator("#alerts-select-all").evaluate("b => b.indeterminate")
    tab.page.locator("#alerts-select-all").check()
    assert ack.text_content() == "Acknowledge selected (16)"

    # One request for all of them; the panel shows them acknowledged, nothing left to select.
    ack.click()
    tab.page.wait_for_selector('#notice[data-kind="ok"]:has-text("16 alerts acknowledged")')
    assert len(acks) == 1 and sorted(acks[0]) == sorted(by_id)
    tab.page.wait_for_function(
        "() => document.querySelectorAll('#alerts li.alert[data-state=\"acknowledged\"]')"
        ".length === 16"
    )
    assert tab.page.locator("#alerts .alerts-tools").is_hidden()
    assert big.locator(".group-summary").text_content().endswith("· 15 acknowledged")
    tab.assert_no_errors()


@pytest.fixture(scope="module")
def inlet_alerts(live_server: str, control_token: str) -> Iterator[list[dict[str, Any]]]:
    """Two real `inlet-temperature-high` alerts (CRITICAL): s02's and s03's inlet sensors stuck
    at 40 °C for 5 simulated minutes (15 s here)."""
    for server in STUCK:
        fault = {
            "kind": "sensor_stuck",
            "entity": server,
            "params": {"metric": "inlet_temperature_celsius", "value": 40, "duration_s": 300},
        }
        post_json(f"{live_server}/api/v1/twin/faults", fault, control_token)
    deadline = time.monotonic() + 30
    while True:
        listed = get_json(f"{live_server}/api/v1/alerts?entity=c01/**")["alerts"]
        found = [a for a in listed if a["rule"] == RULE and a["entity"] in STUCK]
        if len(found) == 2:
            break
        assert time.monotonic() < deadline, f"no {RULE} alerts on {STUCK}: {listed}"
        time.sleep(0.25)
    yield found


def test_bulk_acknowledge_real_alerts(
    live_server: str, control_token: str, inlet_alerts: list[dict[str, Any]], open_tab: Any
) -> None:
    tab = open_tab()
    with_token(tab, control_token)
    tab.page.goto(live_server)
    tab.page.wait_for_selector(LIVE_INDICATOR)
    group = tab.page.locator(f'#alerts li.alert-group[data-rule="{RULE}"]')
    group.wait_for()
    # The panel's group is the server's (GET /alerts?group_by=rule).
    server_groups = get_json(f"{live_server}/api/v1/alerts?group_by=rule")["groups"]
    server_group = next(g for g in server_groups if g["rule"] == RULE)
    assert group.get_attribute("data-count") == str(server_group["count"]) == "2"
    assert group.locator(".alert-level").first.text_content() == server_group["level"].lower()

    group.locator(".group-select").check()
    tab.page.click("#alerts-ack-selected")
    tab.page.wait_for_selector('#notice[data-kind="ok"]:has-text("2 alerts acknowledged")')
    for alert in inlet_alerts:
        tab.page.wait_for_selector(
            f'#alerts li.alert[data-alert-id="{alert["id"]}"][data-state="acknowledged"]'
        )
    listed = {a["id"]: a for a in get_json(f"{live_server}/api/v1/alerts")["alerts"]}
    for alert in inlet_alerts:
        assert listed[alert["id"]]["status"] == "acknowledged"
        assert "token" in listed[alert["id"]]["acknowledged_by"]
    tab.assert_no_errors()


def test_alert_history_filters_and_pages(
    live_server: str, inlet_alerts: list[dict[str, Any]], open_tab: Any, screenshot_dir: Path
) -> None:
    def history(**params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        return get_json(f"{live_server}/api/v1/alerts/history?{query}")

    tab = open_tab()
    # Linked from the overview's header.
    tab.page.goto(live_server)
    tab.page.click("#nav-alerts")
    tab.page.wait_for_url(re.compile(r"/alerts\.html"))
    tab.page.wait_for_selector("#history-summary[data-total]")

    def shown() -> list[tuple[str, str]]:
        rows = tab.page.locator("#history-rows tr.alert-row").evaluate_all(
            "rs => rs.map(r => [r.dataset.entity, r.dataset.rule])"
        )
        return [(entity, rule) for entity, rule in rows]

    def wait_for_total(total: int) -> None:
        tab.page.wait_for_selector(f'#history-summary[data-total="{total}"]')

    # Rule: the two stuck sensors' alerts, newest first, as the API counts them.
    tab.page.fill("#f-rule", RULE)
    tab.page.click("#f-apply")
    wait_for_total(2)
    assert sorted(shown()) == sorted((s, RULE) for s in STUCK)
    assert f"rule={RULE}" in tab.page.url
    assert history(rule=RULE)["total"] == 2

    # Level: none of them is a warning; critical they are.
    tab.page.select_option("#f-level", "WARNING")
    wait_for_total(0)
    assert tab.page.text_content("#history-rows") == "No alert matches."
    assert "level=WARNING" in tab.page.url
    tab.page.select_option("#f-level", "CRITICAL")
    wait_for_total(2)

    # Status: whatever the API says of them now (the acknowledge test may have run).
    acknowledged = history(rule=RULE, status="acknowledged")["total"]
    tab.page.select_option("#f-status", "acknowledged")
    wait_for_total(acknowledged)
    tab.page.select_option("#f-status", "")
    wait_for_total(2)

    # Entity: one server.
    tab.page.fill("#f-entity", STUCK[1])
    tab.page.click("#f-apply")
    wait_for_total(1)
    assert shown() == [(STUCK[1], RULE)]
    row = tab.page.locator("#history-rows tr.alert-row")
    assert row.get_attribute("data-level") == "critical"
    assert row.locator("a.alert-entity").get_attribute("href") == f"server.html?entity={STUCK[1]}"
    assert "40.0 °C" in row.locator(".alert-value").text_content()
    tab.page.screenshot(path=screenshot_dir / "alert-history.png", full_page=True)

    # Pages: one alert a page (from the URL, so it can be shared), next and previous.
    tab.page.goto(f"{live_server}/alerts.html?rule={RULE}&limit=1")
    wait_for_total(2)
    assert tab.page.text_content("#history-summary").startswith("Alerts 1\u20131 of 2")
    assert tab.page.text_content("#page-info") == "Page 1 of 2"
    first = shown()
    assert tab.page.locator("#page-prev").is_disabled()
    tab.page.click("#page-next")
    tab.page.wait_for_function(
        "() => document.querySelector('#page-info').textContent === 'Page 2 of 2'"
    )
    assert "offset=1" in tab.page.url
    assert len(shown()) == 1 and shown() != first
    assert tab.page.locator("#page-next").is_disabled()
    tab.page.click("#page-prev")
    tab.page.wait_for_function(
        "() => document.querySelector('#page-info').textContent === 'Page 1 of 2'"
    )
    assert shown() == first

    # Time range: a custom range that ends before they fired holds none of them.
    fired = min(a["fired_ts_ms"] for a in inlet_alerts)
    before = f"from={fired - 20 * 60_000}&to={fired - 10 * 60_000}"
    tab.page.goto(f"{live_server}/alerts.html?rule={RULE}&{before}")
    wait_for_total(0)
    assert "active" in tab.page.get_attribute('summary[data-range="custom"]', "class")
    # A preset that covers them: the last 15 minutes.
    tab.page.click('.range-btn[data-range="15m"]')
    wait_for_total(2)
    assert "range=15m" in tab.page.url
    tab.assert_no_errors()
