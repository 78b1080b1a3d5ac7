"""Charts over a chosen time range, in a real Chromium against the real server (conftest.py).

What Grafana and Netdata users expect: a range (15 min to 7 days, or custom) applied to every
chart of a page and kept in the URL, served from the tier that gives a few hundred points;
zoom by dragging, the other charts following, and a reset; faults and alerts marked on the
charts; the room's history on the overview. These tests only read: they use c01/r01/s01,
which the control tests leave alone.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser

SERVER = "c01/r01/s01"
LIVE_INDICATOR = '#conn[data-state="live"]'
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
SERVER_CHARTS = ".charts .chart"
ROOM_CHARTS = "#room-charts .chart"
PAINTED_PIXELS_JS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n += 1;
  return n;
}"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def series_queries(tab: Any) -> list[dict[str, list[str]]]:
    """The query parameters of every GET /api/v1/series the page sends from now on."""
    seen: list[dict[str, list[str]]] = []

    def on_request(request: Any) -> None:
        parts = urllib.parse.urlsplit(request.url)
        if parts.path == "/api/v1/series":
            seen.append(urllib.parse.parse_qs(parts.query))

    tab.page.on("request", on_request)
    return seen


def spans(tab: Any, selector: str) -> list[int]:
    """The x range each chart shows (ms), from the data-x-min/max its scale reports."""
    return tab.page.locator(selector).evaluate_all(
        "cs => cs.map(c => Number(c.dataset.xMax) - Number(c.dataset.xMin))"
    )


def wait_for_spans(tab: Any, selector: str, span_ms: float, count: int) -> None:
    """Until every chart matching `selector` (there are `count`) shows a range of `span_ms`."""
    tab.page.wait_for_function(
        """([selector, span, count]) => {
             const charts = [...document.querySelectorAll(selector)];
             return charts.length === count && charts.every(c =>
               Math.abs(Number(c.dataset.xMax) - Number(c.dataset.xMin) - span) <= 1000);
           }""",
        arg=[selector, span_ms, count],
        timeout=10_000,
    )


def wait_for_query(
    tab: Any, seen: list[dict[str, list[str]]], entity: str, start: int, timeout_ms: int = 10_000
) -> dict[str, list[str]]:
    """The newest /series query for `entity` among those sent since `seen` held `start`."""
    deadline = timeout_ms / 100
    while deadline > 0:
        found = [q for q in seen[start:] if q.get("entity") == [entity]]
        if found:
            return found[-1]
        tab.page.wait_for_timeout(100)
        deadline -= 1
    raise AssertionError(f"no /series query for {entity} after the change: {seen[start:]}")


def test_range_selector_sets_the_step_and_every_chart_follows(
    live_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    seen = series_queries(tab)
    tab.page.goto(f"{live_server}/server.html?entity={SERVER}")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    everything = f"{SERVER}/**"

    # The default: the last hour, raw samples (720 at most), on all six charts.
    assert tab.page.get_attribute('.range-btn[data-range="1h"]', "aria-pressed") == "true"
    wait_for_spans(tab, SERVER_CHARTS, HOUR, 6)
    tab.page.wait_for_selector('#charts[data-step="raw"]')
    # A few simulated minutes of samples (a fresh server has only seconds of them).
    tab.page.wait_for_function(
        "() => Number(document.querySelector('#chart-temp').dataset.points) >= 12"
    )
    raw_points = int(tab.page.get_attribute("#chart-temp", "data-points"))
    assert "step" not in [q for q in seen if q.get("entity") == [everything]][-1]

    # 6 hours: 1-minute buckets from the 1m tier, every chart over 6 hours, kept in the URL.
    mark = len(seen)
    tab.page.click('.range-btn[data-range="6h"]')
    query = wait_for_query(tab, seen, everything, mark)
    assert query["step"] == ["1m"]
    assert int(query["to"][0]) - int(query["from"][0]) == pytest.approx(6 * HOUR, abs=1000)
    wait_for_spans(tab, SERVER_CHARTS, 6 * HOUR, 6)
    tab.page.wait_for_selector('#charts[data-step="1m"]')
    # The chart now holds minute averages: far fewer points than the raw samples.
    tab.page.wait_for_function(
        "n => Number(document.querySelector('#chart-temp').dataset.points) < n", arg=raw_points
    )
    assert "1-minute buckets from the 1m tier" in tab.page.text_content("#range-label")
    assert "range=6h" in tab.page.url
    assert tab.page.locator("#chart-temp canvas").evaluate(PAINTED_PIXELS_JS) > 500

    # 7 days: 15-minute buckets (672 at most), and the candles switch to 1 hour.
    mark = len(seen)
    tab.page.click('.range-btn[data-range="7d"]')
    assert wait_for_query(tab, seen, everything, mark)["step"] == ["15m"]
    wait_for_spans(tab, SERVER_CHARTS, 7 * DAY, 6)
    tab.page.wait_for_function(
        "() => /1-hour candles/.test(document.querySelector('#candle-summary').textContent)"
    )
    assert "Could not" not in tab.page.text_content("#candle-summary")
    tab.page.screenshot(path=screenshot_dir / "server-7d.png", full_page=True)

    # 15 minutes: raw rows again (no step).
    mark = len(seen)
    tab.page.click('.range-btn[data-range="15m"]')
    assert "step" not in wait_for_query(tab, seen, everything, mark)
    wait_for_spans(tab, SERVER_CHARTS, 15 * MINUTE, 6)
    tab.page.wait_for_selector('#charts[data-step="raw"]')

    # Custom: from/to in local time; the charts show exactly that, and the URL keeps it.
    tab.page.click('summary[data-range="custom"]')
    # The form opens with the range shown now.
    tab.page.wait_for_function("() => document.querySelector('#range-to').value !== ''")
    tab.page.evaluate(
        """() => {
             const to = document.querySelector('#range-to');
             const end = new Date(Date.parse(to.value) - 60_000);
             const start = new Date(end.getTime() - 10 * 60_000);
             const local = d => new Date(d.getTime() - d.getTimezoneOffset() * 60_000)
               .toISOString().slice(0, 16);
             document.querySelector('#range-from').value = local(start);
             to.value = local(end);
           }"""
    )
    mark = len(seen)
    tab.page.click("#range-apply")
    query = wait_for_query(tab, seen, everything, mark)
    assert int(query["to"][0]) - int(query["from"][0]) == pytest.approx(10 * MINUTE, abs=1000)
    wait_for_spans(tab, SERVER_CHARTS, 10 * MINUTE, 6)
    assert re.search(r"[?&]from=\d+&to=\d+", tab.page.url), tab.page.url
    assert "active" in tab.page.get_attribute('summary[data-range="custom"]', "class")

    # The URL is the view: opened again, the page shows the same range.
    shared = tab.page.url
    tab.page.goto(shared)
    wait_for_spans(tab, SERVER_CHARTS, 10 * MINUTE, 6)
    assert "active" in tab.page.get_attribute('summary[data-range="custom"]', "class")
    tab.assert_no_errors()


def test_drag_to_zoom_every_chart_follows_and_reset(live_server: str, open_tab: Any) -> None:
    tab = open_tab()
    seen = series_queries(tab)
    tab.page.goto(f"{live_server}/server.html?entity={SERVER}&range=15m")
    tab.page.wait_for_selector(LIVE_INDICATOR)
    wait_for_spans(tab, SERVER_CHARTS, 15 * MINUTE, 6)
    tab.page.wait_for_selector("#candle-chart[data-candles]")

    # Drag across the middle half of the temperature chart.
    over = tab.page.locator("#chart-temp .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    y = box["height"] / 2

    def at(share: float, steps: int = 1) -> None:
        # positions relative to the chart, found afresh at each step: a panel above it that
        # grows meanwhile (alerts, health) must not move the drag off the chart. `force`: no
        # actionability wait, since the selection box drawn under the pointer covers the chart
        for k in range(steps):
            x = box["width"] * (share + 0.25 * k / steps)
            over.hover(position={"x": x, "y": y}, force=True)

    def drag() -> None:
        at(0.25)
        tab.page.mouse.down()
        at(0.25, steps=8)
        at(0.5, steps=8)
        at(0.75)
        tab.page.mouse.up()

    mark = len(seen)
    drag()
    # Under a starved CPU the browser can drop a drag's press; once nothing has zoomed for
    # 5 s (the page applies a drag at once), drag again.
    reset = tab.page.locator("#zoom-reset:not([hidden])")
    try:
        reset.wait_for(timeout=5_000)
    except PlaywrightTimeout:
        assert "zoomed" not in (tab.page.text_content("#range-label") or "")
        drag()

    # Every chart, the candles too, shows the selected half of the 15 minutes.
    tab.page.wait_for_selector("#zoom-reset:not([hidden])")
    zoomed = spans(tab, SERVER_CHARTS)
    assert all(span == pytest.approx(7.5 * MINUTE, rel=0.05) for span in zoomed), zoomed
    assert (
        len(set(tab.page.locator(SERVER_CHARTS).evaluate_all("cs => cs.map(c => c.dataset.xMin)")))
        == 1
    )
    chart_min = int(tab.page.get_attribute("#chart-temp", "data-x-min"))
    chart_max = int(tab.page.get_attribute("#chart-temp", "data-x-max"))
    # The candles end where the charts end (half a candle of margin), however few they are.
    candle_max = int(tab.page.get_attribute("#candle-chart", "data-x-max"))
    assert abs(candle_max - chart_max) <= MINUTE
    # Read again for that range, and kept in the URL as from/to.
    query = wait_for_query(tab, seen, f"{SERVER}/**", mark)
    assert int(query["from"][0]) == pytest.approx(chart_min, abs=1000)
    assert re.search(r"[?&]from=\d+&to=\d+", tab.page.url), tab.page.url
    assert "zoomed" in tab.page.text_content("#range-label")

    # Reset: back to the last 15 minutes.
    tab.page.click("#zoom-reset")
    wait_for_spans(tab, SERVER_CHARTS, 15 * MINUTE, 6)
    assert tab.page.locator("#zoom-reset").is_hidden()
    assert "range=15m" in tab.page.url and "from=" not in tab.page.url
    tab.assert_no_errors()


def test_overview_room_history_charts(
    live_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    seen = series_queries(tab)
    tab.page.goto(live_server)
    tab.page.wait_for_selector(LIVE_INDICATOR)

    # IT and facility power, PUE and the hottest CPU, over the last hour.
    wait_for_spans(tab, ROOM_CHARTS, HOUR, 3)
    tab.page.wait_for_function(
        "s => [...document.querySelectorAll(s)].every(c => Number(c.dataset.points) > 2)",
        arg=ROOM_CHARTS,
    )
    room = next(q for q in seen if q.get("entity") == ["room"])
    assert sorted(room["metric"]) == ["facility_power_watts", "it_power_watts", "pue_ratio"]
    cpus = next(q for q in seen if q.get("metric") == ["cpu_temperature_celsius"])
    assert cpus["entity"] == ["**"]
    for chart in ("room-power", "room-pue", "room-hottest"):
        canvas = tab.page.locator(f"#chart-{chart} canvas")
        assert canvas.evaluate(PAINTED_PIXELS_JS) > 500
    legends = tab.page.locator("#chart-room-power .u-legend .u-series").all_text_contents()
    assert any("IT power" in t for t in legends) and any("Facility power" in t for t in legends)
    hottest = tab.page.locator("#chart-room-hottest .u-legend .u-value").last.text_content()
    assert re.fullmatch(r"\d+\.\d °C", hottest), hottest

    # 24 hours: 2-minute buckets for both queries; the hottest CPU from the bucket maxima.
    tab.page.click('.range-btn[data-range="24h"]')
    wait_for_spans(tab, ROOM_CHARTS, DAY, 3)
    tab.page.wait_for_selector('#room-charts[data-step="2m"]')
    recent = seen[-4:]
    assert {q["step"][0] for q in recent if "step" in q} == {"2m"}
    assert "range=24h" in tab.page.url
    tab.page.screenshot(path=screenshot_dir / "overview-history-24h.png", full_page=True)
    tab.assert_no_errors()


def test_markers_cluster_alerts_and_band_faults(live_server: str, open_tab: Any) -> None:
    # A room-wide fault raises an alert on every server at once: one marker saying 15, and a
    # tooltip that lists them without covering the chart. The events are made up here, at
    # times inside the last hour of the running twin.
    now = get_json(f"{live_server}/api/v1/status")["sim_time_ms"]
    fault_ts, alert_ts = now - 20 * MINUTE, now - 10 * MINUTE
    events = [
        {
            "ts_ms": alert_ts,
            "end_ts_ms": None,
            "kind": "alert.fired",
            "entity": f"c01/r{r:02d}/s01",
            "severity": "critical",
            "attributes": {"rule": "inlet-temperature-high", "level": "CRITICAL"},
        }
        for r in range(1, 16)
    ] + [
        {
            "ts_ms": fault_ts,
            "end_ts_ms": None,
            "kind": "fault.injected",
            "entity": "room/crac1",
            "severity": "critical",
            "attributes": {"fault": "crac_degradation"},
        }
    ]
    tab = open_tab()
    asked: list[dict[str, list[str]]] = []

    def answer(route: Any) -> None:
        asked.append(urllib.parse.parse_qs(urllib.parse.urlsplit(route.request.url).query))
        route.fulfill(content_type="application/json", body=json.dumps({"events": events}))

    tab.page.route(re.compile(r"/api/v1/events\?"), answer)
    tab.page.goto(live_server)
    alert = tab.page.locator('#chart-room-hottest .marker[data-kind="alert.fired"]')
    alert.wait_for()
    assert any(
        sorted(q.get("kind", [])) == ["alert.escalated", "alert.fired", "fault.injected"]
        for q in asked
    ), asked
    assert alert.count() == 1
    assert alert.get_attribute("data-count") == "15"
    assert alert.get_attribute("data-level") == "critical"
    assert alert.locator(".marker-count").text_content() == "15"
    band = tab.page.locator('#chart-room-hottest .marker[data-kind="fault.injected"]')
    assert band.count() == 1
    # The band runs from the fault's start (before the alerts) to now: it is still open.
    assert band.bounding_box()["x"] < alert.bounding_box()["x"]

    alert.hover(force=True)
    tip = tab.page.locator("#chart-room-hottest .marker-tip")
    tip.wait_for()
    lines = tip.locator(".marker-tip-line").all_text_contents()
    assert len(lines) == 8 and lines[0].startswith("Fault: crac degradation on room/crac1")
    assert "Alert inlet-temperature-high fired (critical)" in lines[1]
    assert tip.locator(".marker-tip-more").text_content() == "and 8 more"
    tab.assert_no_errors()


def test_time_range_helpers(live_server: str, open_tab: Any) -> None:
    # The rules the pages apply, as the browser loads them.
    tab = open_tab()
    tab.page.goto(f"{live_server}/alerts.html")
    result = tab.page.evaluate(
        """async () => {
             const t = await import('./js/timerange.js');
             const c = await import('./js/charts.js');
             const m = 60000, h = 60 * m, d = 24 * h;
             return {
               steps: [15 * m, h, 6 * h, d, 7 * d, 90 * d].map(s => t.pickStep(s).step),
               words: [0, 60000, 120000, 3600000].map(t.describeStep),
               url: t.rangeFromUrl('1h', '?from=1000&to=61000'),
               bad: t.rangeFromUrl('1h', '?range=2y&from=5&to=1'),
               // The hottest of two servers, per bucket, from their maxima; a NULL bucket of
               // one server does not hide the other's reading.
               hottest: c.maxLine({bucket_ms: 60000, from_ms: 0, series: [
                 {ts: [0, 60000], high: [50, null], avg: [1, 1]},
                 {ts: [0, 60000], high: [55, 40], avg: [1, 1]},
               ]}),
             };
           }"""
    )
    assert result["steps"] == [None, None, "1m", "2m", "15m", "3h"]
    assert result["words"] == [
        "raw samples",
        "1-minute buckets from the 1m tier",
        "2-minute buckets from the 1m tier",
        "1-hour buckets from the 1h tier",
    ]
    assert result["url"] == {"from": 1000, "to": 61000}
    assert result["bad"] == {"preset": "1h"}
    assert result["hottest"] == {"ts": [0, 60000], "value": [55, 40], "gaps": []}
    tab.assert_no_errors()
