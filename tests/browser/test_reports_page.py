"""The Reports page in a real Chromium against a real `rackwatch run` whose data directory
holds yesterday's hour of the small room: the schedule has made the due reports at start;
"Generate now" makes a week's report (control token); the day's HTML opens in a new tab
with its charts and loads nothing from anywhere; JSON and CSV download."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TOKEN_KEY = "rackwatch.controlToken"
YESTERDAY = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
MONDAY = YESTERDAY - dt.timedelta(days=YESTERDAY.weekday())


@pytest.fixture(scope="module")
def site(
    start_server: Callable[[list[str], Path], str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    data_dir = tmp_path_factory.mktemp("rackwatch-reports")
    room = ["--scenario", "small", "--hours", "1", "--start", f"{YESTERDAY}T10:00:00"]
    subprocess.run(
        [sys.executable, "-m", "rackwatch", "simulate", *room, "--out", str(data_dir)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = data_dir / "rackwatch.toml"
    config.write_text('[site]\ntimezone = "UTC"\n\n[reports]\nformats = ["html", "json", "csv"]\n')
    base = start_server(["--scenario", "small", "--no-host", "--config", str(config)], data_dir)
    token = (data_dir / "control-token.txt").read_text().strip()
    return base, token


def wait_for_the_schedule(base: str) -> None:
    """The schedule makes yesterday's report in a worker thread once the server has started."""
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(f"{base}/api/v1/reports?period=day", timeout=10) as got:
            if any(r["name"] == f"day-{YESTERDAY}" for r in json.load(got)["reports"]):
                return
        assert time.monotonic() < deadline, "the schedule made no report for yesterday"
        time.sleep(0.5)


def test_generate_a_report_and_open_it(
    site: tuple[str, str], open_tab: Any, screenshot_dir: Path
) -> None:
    base, token = site
    wait_for_the_schedule(base)
    tab = open_tab()
    tab.page.add_init_script(f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)})")
    tab.page.goto(f"{base}/")
    tab.page.click("#nav-reports")
    day_row = f'tr[data-name="day-{YESTERDAY}"]'
    tab.page.wait_for_selector(day_row)

    tab.page.select_option("#report-period", "week")
    tab.page.fill("#report-date", YESTERDAY.isoformat())
    tab.page.click("#report-generate")
    week_row = f'tr[data-name="week-{MONDAY}"].report-new'
    tab.page.wait_for_selector(week_row, timeout=60_000)
    assert "made in" in tab.page.text_content("body")
    tab.page.screenshot(path=screenshot_dir / "reports-page.png", full_page=True)

    with tab.page.context.expect_page() as opened:
        tab.page.click(f'{day_row} a[data-format="html"]')
    report = opened.value
    report.wait_for_load_state()
    assert report.title() == f"rackwatch · Daily report: {YESTERDAY}"
    assert report.locator("svg.chart").count() >= 3  # CPU, power, temperatures, by hour
    busiest = report.locator("dl.cards").inner_text()
    assert "Busiest server" in busiest and "c01/r01/s" in busiest
    report.screenshot(path=screenshot_dir / "report-day.png", full_page=True)
    report.emulate_media(media="print")
    report.screenshot(path=screenshot_dir / "report-day-print.png", full_page=True)

    json_link = tab.page.locator(f'{day_row} a[data-format="json"]')
    assert json_link.get_attribute("download") == f"day-{YESTERDAY}.json"
    with urllib.request.urlopen(base + json_link.get_attribute("href"), timeout=10) as got:
        doc = json.load(got)
    assert doc["name"] == f"day-{YESTERDAY}" and doc["n_machines"] > 0
    csv_link = tab.page.locator(f'{day_row} a[data-format="csv"]')
    assert csv_link.get_attribute("href") == f"/api/v1/reports/day-{YESTERDAY}.csv"
    tab.assert_no_errors()


def test_generating_without_a_token_says_what_to_do(site: tuple[str, str], open_tab: Any) -> None:
    base, _token = site
    wait_for_the_schedule(base)
    tab = open_tab()
    tab.page.goto(f"{base}/reports.html")
    tab.page.wait_for_selector(".report-row")
    tab.page.click("#report-generate")
    tab.page.wait_for_selector("#token-box[open]")
    assert "control token" in tab.page.text_content("body")
    tab.assert_no_errors()


def test_a_phone_sized_screen_never_scrolls_sideways(site: tuple[str, str], open_tab: Any) -> None:
    base, _token = site
    wait_for_the_schedule(base)
    tab = open_tab(390, 844)
    tab.page.goto(f"{base}/reports.html")
    tab.page.wait_for_selector(".report-row")
    assert tab.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    tab.assert_no_errors()
