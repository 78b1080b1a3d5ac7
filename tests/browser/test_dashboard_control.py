"""Alerts, device states and control from the dashboard, in a real Chromium against the real
server (fixtures in conftest.py; docs/API.md "Control, alerts and states").

Each test works on its own server of the fan-fail room, so they do not disturb one another or
test_dashboard.py: s02 for fan control, s04 for the injected fault, s05 for maintenance. The
scheduled fan-fail fault (s03/fan1 at 30 simulated minutes) comes too late to wait for; the
fault test injects its own through the page, as an operator would.

Switching a fan off, injecting a fault and maintenance ask for a confirmation first: each test
cancels once (nothing is sent, nothing changes), then confirms.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

LIVE_INDICATOR = '#conn[data-state="live"]'
STATES = {"OK", "WARNING", "CRITICAL", "FAILED", "MAINTENANCE", "UNKNOWN"}
TOKEN_KEY = "rackwatch.controlToken"
# What the page must tell someone without a usable token (docs/API.md, the CLI).
TOKEN_HINTS = ("control-token.txt", "rackwatch token create --scope control")
REFUSED_REQUEST = r"status of 40[13]"


def get_json(url: str) -> Any:
    """A read from this machine: open without a token (`open_reads_on_loopback`)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def with_token(tab: Any, token: str) -> None:
    """Saves `token` in the page's localStorage before any script of the page runs."""
    tab.page.add_init_script(f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)})")


def fan_status(base: str, fan: str) -> dict[str, Any]:
    server = fan.rsplit("/", 1)[0]
    fans = get_json(f"{base}/api/v1/fans?entity={server}/**")["fans"]
    return next(f for f in fans if f["entity"] == fan)


def card(fan: str) -> str:
    return f'.fan-card[data-entity="{fan}"]'


def record_changes(tab: Any) -> list[str]:
    """The control calls (POST, DELETE under /api/) the page sends from now on."""
    sent: list[str] = []

    def on_request(request: Any) -> None:
        if request.method in ("POST", "DELETE") and "/api/" in request.url:
            sent.append(f"{request.method} {request.url.split('/api/v1', 1)[-1]}")

    tab.page.on("request", on_request)
    return sent


def answer_dialog(tab: Any, button: str, says: str) -> None:
    """Waits for the confirmation dialog, checks that it says `says`, presses `button`."""
    dialog = tab.page.locator("#confirm-dialog[open]")
    dialog.wait_for()
    assert says in dialog.text_content(), dialog.text_content()
    # The safe answer has the focus: Enter cancels.
    assert tab.page.evaluate("document.activeElement.id") == "confirm-cancel"
    dialog.locator("#confirm-ok" if button == "confirm" else "#confirm-cancel").click()
    tab.page.wait_for_selector("#confirm-dialog", state="hidden")


def test_states_badges_on_both_pages(live_server: str, open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto(live_server)
    tab.page.wait_for_selector(LIVE_INDICATOR)
    # Every tile has a state chip (a word, not only a colour) and says busy or idle.
    tab.page.wait_for_function(
        "() => document.querySelectorAll('.tile .tile-state .state-usage').length === 5"
    )
    chips = tab.page.locator(".tile .tile-state").evaluate_all(
        "cs => cs.map(c => [c.dataset.state, c.querySelector('.state-name').textContent,"
        " c.querySelector('.state-usage').textContent])"
    )
    assert len(chips) == 5
    for state, name, usage in chips:
        assert state in STATES and name.upper() == state
        assert usage in ("busy", "idle")
    tiles = tab.page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.state)")
    assert set(tiles) <= STATES
    # The temperature fill is still there beside the state.
    assert "rgb(" in tab.page.locator(".tile").first.evaluate(
        "t => t.style.getPropertyValue('--tile-bg')"
    )
    # The alerts panel has loaded (alerts, or its explicit empty state).
    tab.page.wait_for_selector("#alerts > li:not(:has-text('Loading'))")

    tab.page.goto(f"{live_server}/server.html?entity=c01/r01/s01")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    hero = tab.page.locator("#hero-state .state-chip")
    hero.wait_for()
    assert hero.get_attribute("data-state") in STATES
    for fan in ("c01/r01/s01/fan1", "c01/r01/s01/fan2"):
        tab.page.wait_for_function(
            "s => document.querySelector(s)?.textContent === 'auto mode'",
            arg=f"{card(fan)} .fan-mode",
        )
        assert (
            tab.page.locator(f"{card(fan)} .fan-device .state-chip").get_attribute("data-state")
            in STATES
        )
    tab.assert_no_errors()


def test_fan_manual_high_needs_a_control_token(
    live_server: str, control_token: str, read_token: str, open_tab: Any, screenshot_dir: Path
) -> None:
    fan = "c01/r01/s02/fan2"
    high = f'{card(fan)} .fan-level[data-level="3"]'
    mode = f"{card(fan)} .fan-mode"
    tab = open_tab()
    tab.page.goto(f"{live_server}/server.html?entity=c01/r01/s02")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'auto mode'", arg=mode
    )
    assert tab.page.text_content("#token-box .token-label") == "No token"

    # No token: the page says where to find one, opens the token box, and sends nothing.
    tab.page.click(high)
    notice = tab.page.locator('#notice[data-kind="auth"]')
    notice.wait_for()
    for hint in TOKEN_HINTS:
        assert hint in notice.text_content()
    assert tab.page.locator("#token-box").get_attribute("open") is not None
    assert fan_status(live_server, fan)["mode"] == "auto"
    assert tab.page.text_content(mode) == "auto mode"

    # A token the server does not know: refused (401), the same advice, nothing changed.
    tab.page.fill("#token-input", "rw_not-a-real-token")
    tab.page.press("#token-input", "Enter")
    tab.page.click(high)
    tab.page.wait_for_function(
        "() => /not accepted/.test(document.querySelector('#notice').textContent)"
    )
    assert fan_status(live_server, fan)["mode"] == "auto"

    # A read token: refused (403), and the page says this token can only read.
    tab.page.fill("#token-input", read_token)
    tab.page.press("#token-input", "Enter")
    tab.page.click(high)
    tab.page.wait_for_function(
        "() => /can only read/.test(document.querySelector('#notice').textContent)"
    )
    for hint in TOKEN_HINTS:
        assert hint in notice.text_content()
    assert fan_status(live_server, fan)["mode"] == "auto"

    # The real token: saved, shown masked (never in full), and the fan goes manual, high.
    tab.page.fill("#token-input", control_token)
    tab.page.press("#token-input", "Enter")
    label = tab.page.text_content("#token-box .token-label")
    assert label.endswith(control_token[-4:]) and "\u2022" in label
    assert control_token not in tab.page.content()
    tab.page.click(high)
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'manual mode'", arg=mode
    )
    # The lit level is what the fan reports over the stream: high once the twin applied it.
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'high'",
        arg=f"{card(fan)} .fan-level.active",
    )
    assert tab.page.get_attribute(high, "aria-pressed") == "true"
    status = fan_status(live_server, fan)
    assert (status["mode"], status["level"]) == ("manual", 3)
    tab.page.screenshot(path=screenshot_dir / "server-fan-manual.png", full_page=True)

    # Back to auto, from the page: the controller owns the fan again.
    tab.page.click(f'{card(fan)} .fan-mode-btn[data-mode="auto"]')
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'auto mode'", arg=mode
    )
    assert fan_status(live_server, fan)["mode"] == "auto"
    tab.assert_no_errors(allow=REFUSED_REQUEST)


def test_fan_off_asks_first(live_server: str, control_token: str, open_tab: Any) -> None:
    fan = "c01/r01/s02/fan1"
    mode = f"{card(fan)} .fan-mode"
    tab = open_tab()
    with_token(tab, control_token)
    tab.page.goto(f"{live_server}/server.html?entity=c01/r01/s02")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'auto mode'", arg=mode
    )
    sent = record_changes(tab)
    off = f'{card(fan)} .fan-level[data-level="0"]'

    # Cancel: nothing sent, the fan stays under the controller.
    tab.page.click(off)
    answer_dialog(tab, "cancel", "stays off in manual mode")
    tab.page.wait_for_timeout(300)
    assert sent == []
    assert fan_status(live_server, fan)["mode"] == "auto"
    assert tab.page.text_content(mode) == "auto mode"

    # Escape is a cancel too.
    tab.page.click(off)
    tab.page.locator("#confirm-dialog[open]").wait_for()
    tab.page.keyboard.press("Escape")
    tab.page.wait_for_selector("#confirm-dialog", state="hidden")
    assert sent == []

    # Confirm: the fan goes off, by hand.
    tab.page.click(off)
    answer_dialog(tab, "confirm", "Switch Fan 1 off?")
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'manual mode'", arg=mode
    )
    assert sent == ["POST /fans/level"]
    status = fan_status(live_server, fan)
    assert status["mode"] == "manual"
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'off'",
        arg=f"{card(fan)} .fan-level.active",
    )

    # Other levels need no confirmation; Auto hands it back.
    tab.page.click(f'{card(fan)} .fan-mode-btn[data-mode="auto"]')
    tab.page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'auto mode'", arg=mode
    )
    assert tab.page.locator("#confirm-dialog[open]").count() == 0
    assert fan_status(live_server, fan)["mode"] == "auto"
    tab.assert_no_errors()


def test_injected_fan_fault_alert_shows_live_and_is_acknowledged(
    live_server: str, control_token: str, open_tab: Any, screenshot_dir: Path
) -> None:
    fan = "c01/r01/s04/fan1"
    alert_item = f'#alerts li.alert[data-entity="{fan}"]'

    # The overview, where GET /alerts never answers: what it shows comes from the stream.
    overview = open_tab()
    with_token(overview, control_token)
    overview.page.route(re.compile(r"/api/v1/alerts(\?|$)"), lambda _route: None)  # left pending
    overview.page.goto(live_server)
    overview.page.wait_for_selector(LIVE_INDICATOR)

    # The server page: the fault form lists the twin's catalogue, fan faults first, and
    # targets this server's fans.
    server = open_tab()
    with_token(server, control_token)
    server.page.goto(f"{live_server}/server.html?entity=c01/r01/s04")
    server.page.wait_for_selector(LIVE_INDICATOR)
    server.page.wait_for_selector("#fault-panel:not([hidden])")
    assert server.page.input_value("#fault-kind") == "fan_off"
    server.page.select_option("#fault-target", fan)
    sent = record_changes(server)

    # Asked first; Cancel sends nothing.
    server.page.click("#fault-inject")
    answer_dialog(server, "cancel", f'Inject "fan off" on {fan}?')
    server.page.wait_for_timeout(300)
    assert sent == []
    assert server.page.locator("#notice:not([hidden])").count() == 0

    server.page.click("#fault-inject")
    answer_dialog(server, "confirm", "Alerts fire and notifications are sent")
    server.page.wait_for_selector('#notice[data-kind="ok"]:has-text("injected")')
    assert sent == ["POST /twin/faults"]

    # The twin stops the fan, the fan-stopped rule fires (10 simulated s: 0.5 s at 20x); the
    # server page lists the alert (from REST and the stream) and marks the fan FAILED.
    server.page.wait_for_selector(f"{alert_item}.lvl-critical")
    server.page.wait_for_selector(f'{card(fan)} .fan-device .state-chip[data-state="FAILED"]')

    # The header rolls the fan up: the server is shown FAILED because of fan1, never OK,
    # with its alert count, while the server's own state stays what the engine says.
    server.page.wait_for_selector('#hero-state[data-state="FAILED"] .state-chip')
    assert server.page.text_content("#hero-state .rollup-from") == "from fan1"
    server.page.wait_for_selector('#hero-alerts [data-level="critical"][data-count="1"]')
    own = server.page.get_attribute("#hero-state", "data-own")
    assert own != "FAILED"
    assert f"The server itself: {own}" in server.page.text_content("#state-reason")

    # The charts mark the fault (a band from its start) and the alert (a line).
    band = server.page.locator('#chart-temp .marker[data-kind="fault.injected"]')
    band.wait_for()
    server.page.locator('#chart-temp .marker[data-kind="alert.fired"]').wait_for()
    # Every chart of the server has them.
    assert server.page.locator('.charts .marker[data-kind="fault.injected"]').count() == 6
    band.hover(force=True)  # the markers let the pointer through to the chart
    tip = server.page.locator("#chart-temp .marker-tip")
    tip.wait_for()
    assert f"Fault: fan off on {fan}" in tip.text_content()
    # Only the chart under the pointer shows a tip; the others show the same instant.
    assert server.page.locator(".charts .marker-tip:not([hidden])").count() == 1
    server.page.screenshot(path=screenshot_dir / "server-fault-markers.png", full_page=True)
    server.assert_no_errors()

    # The overview got it live: level, entity link, message and age; the tile flags the fan.
    alert = overview.page.locator(alert_item)
    alert.wait_for()
    assert alert.get_attribute("data-state") == "firing"
    assert alert.locator(".alert-level").text_content() == "critical"
    assert alert.locator("a.alert-entity").get_attribute("href") == (
        "server.html?entity=c01/r01/s04"
    )
    assert fan in alert.locator(".alert-message").text_content()
    overview.page.wait_for_function(
        "s => /^for \\d/.test(document.querySelector(s)?.textContent ?? '')",
        arg=f"{alert_item} .alert-age",
    )
    overview.page.wait_for_selector('[data-entity="c01/r01/s04"] .flag:has-text("fan1 failed")')
    alert_id = alert.get_attribute("data-alert-id")
    overview.page.screenshot(path=screenshot_dir / "overview-alert.png", full_page=True)

    # Acknowledge from the page: the alert stays listed, acknowledged, and the API agrees.
    alert.locator(".alert-ack").click()
    overview.page.wait_for_selector(
        f'#alerts li.alert[data-alert-id="{alert_id}"][data-state="acknowledged"]'
    )
    assert alert.locator(".alert-ack").count() == 0
    assert re.match(r"acknowledged by \S+", alert.locator(".alert-state").text_content())
    listed = get_json(f"{live_server}/api/v1/alerts")["alerts"]
    acked = next(a for a in listed if a["id"] == alert_id)
    assert (acked.get("state") or acked.get("status")) == "acknowledged"
    overview.assert_no_errors()


def test_maintenance_toggle(live_server: str, control_token: str, open_tab: Any) -> None:
    server = "c01/r01/s05"
    tab = open_tab()
    with_token(tab, control_token)
    tab.page.goto(f"{live_server}/server.html?entity={server}")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    toggle = tab.page.locator("#maintenance-toggle")
    tab.page.wait_for_selector("#hero-state .state-chip:not([data-state='UNKNOWN'])")
    assert toggle.get_attribute("aria-pressed") == "false"
    sent = record_changes(tab)

    # Cancel: nothing sent, nothing changed.
    toggle.click()
    answer_dialog(tab, "cancel", "nobody is notified")
    tab.page.wait_for_timeout(300)
    assert sent == []
    assert toggle.get_attribute("aria-pressed") == "false"
    states = get_json(f"{live_server}/api/v1/states?entity={server}")["entities"]
    assert states[server]["state"] != "MAINTENANCE"

    toggle.click()
    answer_dialog(tab, "confirm", f"Put {server} in maintenance?")
    tab.page.wait_for_selector('#hero-state .state-chip[data-state="MAINTENANCE"]')
    assert toggle.get_attribute("aria-pressed") == "true"
    states = get_json(f"{live_server}/api/v1/states?entity={server}")["entities"]
    assert states[server]["state"] == "MAINTENANCE"

    toggle.click()
    answer_dialog(tab, "confirm", f"End maintenance of {server}?")
    tab.page.wait_for_function(
        "() => document.querySelector('#hero-state .state-chip')?.dataset.state !== 'MAINTENANCE'"
    )
    assert toggle.get_attribute("aria-pressed") == "false"
    assert sent == ["POST /maintenance", f"DELETE /maintenance/{server}"]
    tab.assert_no_errors()
