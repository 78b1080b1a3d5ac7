"""The tools' arguments: their types and bounds (published in each tool's input schema, and
checked by the SDK before a tool runs), and the checks the API makes on the same values
(`api.params`), made first so that a bad value is refused with the API's own words before
any call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Final

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from rackwatch.api.params import (
    MAX_TIME_LENGTH,
    ParamError,
    check_entity_glob,
    check_metric_globs,
    parse_step,
    parse_time,
)
from rackwatch.model import entity as entity_path

MAX_METRICS: Final = 20

EntityGlob = Annotated[
    str,
    Field(
        min_length=1,
        max_length=entity_path.MAX_PATTERN_LENGTH,
        description=(
            "Entity glob over paths like c01/r01/s03 (cluster/rack/server) and "
            "c01/r01/s03/fan1: `*` is one segment, `**` any number of segments, so "
            "c01/r01/s03/** is the server and everything in it and `**` is everything."
        ),
    ),
]
EntityPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=entity_path.MAX_PATTERN_LENGTH,
        description="One entity path, no wildcards: c01/r01/s03, c01/r01/s03/fan1, room/crac1.",
    ),
]
Metrics = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    Field(
        min_length=1,
        max_length=MAX_METRICS,
        description=(
            "Metric names or globs, e.g. cpu_temperature_celsius, power_watts, fan_rpm, "
            "fan_* (see get_state for the metrics an entity has)."
        ),
    ),
]
TimeText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TIME_LENGTH,
        description=(
            "A time: a duration before now (-30m, -6h, -7d), 'now', epoch milliseconds or "
            "ISO 8601 (2026-01-01T00:00:00Z)."
        ),
    ),
]


def glob(pattern: str) -> str:
    """An entity glob the API takes; ToolError in the API's words otherwise."""
    try:
        return check_entity_glob(pattern)
    except ParamError as exc:
        raise ToolError(str(exc)) from None


def path(text: str) -> str:
    """One entity path (no wildcard, no `.` or `..` segment: it goes into a URL path)."""
    if entity_path.is_glob(text):
        raise ToolError(
            f"{text[:64]!r} is a pattern: give one entity path such as c01/r01/s03 "
            "(list_devices lists them)"
        )
    try:
        entity_path.validate(text)
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    if any(segment in (".", "..") for segment in text.split("/")):
        raise ToolError(f"bad entity path {text[:64]!r}: a segment cannot be . or ..")
    return text


def metrics(names: Sequence[str] | None) -> list[str]:
    try:
        return check_metric_globs(list(names or ())) or []
    except ParamError as exc:
        raise ToolError(str(exc)) from None


def step_ms(text: str) -> int:
    try:
        return parse_step(text)
    except ParamError as exc:
        raise ToolError(str(exc)) from None


def time_span(since: str, until: str, *, now_ms: int) -> tuple[int, int]:
    """[since, until) in epoch ms, as the API reads `from` and `to` (`now` is the server's)."""
    try:
        start = parse_time(since, now_ms=now_ms, name="since")
        end = parse_time(until, now_ms=now_ms, name="until")
    except ParamError as exc:
        raise ToolError(str(exc)) from None
    if end <= start:
        raise ToolError(f"since ({start}) must be before until ({end})")
    return start, end


def checked_time(text: str, name: str) -> str:
    """`text` if it is a time the API reads (it is passed on as written, and read against the
    server's clock there); ToolError naming `name` otherwise."""
    try:
        parse_time(text, now_ms=time.time_ns() // 1_000_000, name=name)
    except ParamError as exc:
        raise ToolError(str(exc)) from None
    return text
