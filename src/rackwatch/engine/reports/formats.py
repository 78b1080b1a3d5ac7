"""The formats a report is written in, their media types and renderers."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from rackwatch.engine.reports.content import Report
from rackwatch.engine.reports.page import render_html
from rackwatch.engine.reports.periods import ReportError
from rackwatch.engine.reports.tabular import render_csv

FORMATS = ("html", "json", "csv")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


def render_json(report: Report) -> bytes:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"


RENDERERS: dict[str, Callable[[Report], bytes]] = {
    "html": render_html,
    "json": render_json,
    "csv": render_csv,
}


def check_format(name: str) -> str:
    cleaned = name.strip().lower()
    if cleaned not in RENDERERS:
        raise ReportError(f"unknown report format {name[:40]!r}: use html, json or csv")
    return cleaned


def render(report: Report, fmt: str) -> bytes:
    """The report as a file of `fmt` (html, json or csv)."""
    return RENDERERS[check_format(fmt)](report)
