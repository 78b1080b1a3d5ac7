"""The report's files: JSON keys, the tidy CSV, and HTML that loads nothing from anywhere."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from report_support import DAY, A, H, at, open_room

from rackwatch.engine.reports import build_report, period_of, render
from rackwatch.engine.reports.charts import inline_svg, scale
from rackwatch.engine.reports.page import fmt

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    store = open_room(tmp_path_factory.mktemp("room"))
    try:
        yield build_report(store, period_of("day", DAY, ZoneInfo("UTC")), now_ms=at(0, day=2))
    finally:
        store.close()


def test_json_keys_are_plain_english(report):
    doc = json.loads(render(report, "json"))
    assert doc["report"] == "day" and doc["name"] == "day-2026-03-05"
    assert doc["period"]["timezone"] == "UTC"
    assert doc["cpu"]["busiest_hour"] == {
        "hour": 14,
        "label": "14:00-15:00",
        "cpu_utilization_ratio": pytest.approx(0.75),
    }
    assert doc["cpu"]["busiest_server"]["entity"] == A
    assert doc["cpu"]["idlest_server"]["entity"] == H
    assert {"average", "median", "min", "max"} <= set(doc["metrics"][0])
    assert doc["gpu"]["gpu_idle_rate"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert {"energy_kwh", "cost", "currency", "pue"} <= set(doc["energy"])
    assert {"up_bytes", "down_bytes"} <= set(doc["network"])
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in doc.items() if k != "energy"})
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys), sorted(keys)


def test_csv_is_one_tidy_table(report):
    rows = list(csv.reader(io.StringIO(render(report, "csv").decode("utf-8"))))
    assert rows[0] == ["section", "time", "entity", "metric", "statistic", "value", "unit"]
    assert all(len(r) == 7 for r in rows)
    assert ["cpu", "", A, "cpu_utilization_ratio", "busiest_server", "0.52", "ratio"] in rows
    assert ["cpu", "", "fleet", "cpu_utilization_ratio", "busiest_hour", "14", "hour"] in rows
    assert [
        "network",
        "",
        "fleet",
        "network_transmit_bytes",
        "up_total",
        "240000.0",
        "bytes",
    ] in rows
    assert [
        "disk_by_hour",
        "2026-03-05T10:00+00:00",
        "fleet",
        "disk_used_bytes",
        "total",
        "180000000000.0",
        "bytes",
    ] in rows
    alerts = [r for r in rows if r[0] == "alerts"]
    assert alerts[0] == [
        "alerts",
        "2026-03-05T09:00:00+00:00",
        A,
        "cpu-hot",
        "warning",
        "1800.0",
        "s",
    ]
    assert alerts[1][5] == ""  # still open: no duration
    trend = [r for r in rows if r[0] == "trend" and r[3] == "cpu_utilization_ratio"]
    assert trend[0][1] == "2026-03-05T00:00+00:00" and trend[0][5] == ""


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained(report):
    page = render(report, "html").decode("utf-8")
    assert "http://" not in page and "https://" not in page
    parsed = Collector()
    parsed.feed(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "img" not in tags and "iframe" not in tags
    links = [a for t, a in parsed.tags if t == "link"]
    assert links == [{"rel": "icon", "href": "data:,"}]
    assert not any("src" in a for _, a in parsed.tags)
    charts = [a for t, a in parsed.tags if t == "svg"]
    assert len(charts) >= 5 and all(a.get("class") == "chart" for a in charts)
    ids = [a["id"] for _, a in parsed.tags if "id" in a]
    assert len(ids) == len(set(ids))  # every chart's ids are its own
    assert "@media print" in page and "@page" in page
    assert A in page and "14:00-15:00" in page and "cpu-hot" in page


def test_inline_svg_drops_the_prologue_and_namespaces():
    raw = (
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/'
        'DTD/svg11.dtd">\n<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" '
        'height="5pt" viewBox="0 0 10 5" xmlns="http://www.w3.org/2000/svg" version="1.1">\n'
        "<metadata><rdf:RDF/></metadata><defs><style>*{x:y}</style></defs>"
        '<path id="p1" clip-path="url(#c1)"/><use xlink:href="#p1"/></svg>'
    )
    svg = inline_svg(raw, "k", 'A "chart"')
    assert svg.startswith('<svg class="chart" role="img" aria-label="A &quot;chart&quot;"')
    assert "http" not in svg and "metadata" not in svg and "style" not in svg
    assert 'id="k-p1"' in svg and 'href="#k-p1"' in svg and "url(#k-c1)" in svg


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.4567, "ratio", "45.7 %"),
        (3 * 1024**3, "bytes", "3.00 GiB"),
        (2500.0, "watts", "2.50 kW"),
        (1234.56, "kWh", "1,234.6 kWh"),
        (None, "ratio", "\u2014"),
        (0.0, "ratio", "0.0 %"),
    ],
)
def test_values_for_people(value, unit, shown):
    assert fmt(value, unit) == shown


def test_scale_picks_a_readable_unit():
    assert scale("bytes_per_second", [2e6, 5e5]) == (1e6, "MB/s")
    assert scale("ratio", [0.5]) == (0.01, "%")


def test_html_in_a_time_zone_shows_local_times(tmp_path):
    store = open_room(tmp_path)
    try:
        report = build_report(store, period_of("day", DAY, PARIS), now_ms=at(0, day=2))
    finally:
        store.close()
    # 14:00 UTC is 15:00 in Paris
    assert report.cpu.busiest_hour is not None and report.cpu.busiest_hour.hour == 15
    assert "2026-03-05 00:00:00+01:00" in render(report, "html").decode()
