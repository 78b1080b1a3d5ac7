"""Parsing of user-facing query values: times, steps, entity and metric globs.

Pure functions that raise `ParamError` with a message saying what is wrong and what to send
instead; routes turn it into a 400 and the WebSocket into an `INVALID_FILTER` error.

>>> parse_time("now", now_ms=1_000_000)
1000000
>>> parse_time("-6h", now_ms=100_000_000)
78400000
>>> parse_time("2026-01-01T00:00:00Z", now_ms=0)
1767225600000
>>> parse_step("1m"), parse_step("5s"), parse_step("250")
(60000, 5000, 250)
>>> check_entity_glob("c01/*/s07/**")
'c01/*/s07/**'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

MAX_TS_MS = 253_402_300_800_000
"""Year 10000: beyond it a time is a mistake, and ms stay exact in JSON (< 2**53)."""
MAX_GLOB_LENGTH = 512
MAX_METRICS = 100

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_ENTITY_SEGMENT = re.compile(r"^[A-Za-z0-9_.:\-*?\[\]!]+$")
_METRIC_GLOB = re.compile(r"^[A-Za-z0-9_:*?\[\]!]+$")


class ParamError(ValueError):
    """A query value is malformed; the message says which and what would be accepted."""


def parse_duration_ms(text: str, name: str = "duration") -> int:
    """`30s`, `5m`, `6h`, `7d`, `2w`, `250ms` as a positive number of ms.

    >>> parse_duration_ms("1.5h")
    5400000
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ParamError(f"{name} {text!r} is not a duration like 250ms, 30s, 5m, 6h, 7d or 2w")
    value = int(float(match.group(1)) * _UNITS_MS[match.group(2)])
    if value <= 0:
        raise ParamError(f"{name} {text!r} must be more than 0 ms")
    if value > MAX_TS_MS:
        raise ParamError(f"{name} {text!r} is too long")
    return value


def parse_time(text: str, *, now_ms: int, name: str = "time") -> int:
    """Epoch ms from an integer (ms), an ISO 8601 time (UTC when no zone is given), `now`, or
    `-<duration>` before now (`-6h`)."""
    text = text.strip()
    if text == "now":
        return now_ms
    if text.startswith("-") and not text[1:].isdigit():
        return _in_range(now_ms - parse_duration_ms(text[1:], name), name, text)
    if re.fullmatch(r"-?\d+", text):
        return _in_range(int(text), name, text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParamError(
            f"{name} {text!r} is not a time: give epoch ms (1767225600000), ISO 8601 "
            "(2026-01-01T00:00:00Z), 'now' or a duration before now ('-6h')"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return _in_range(round(when.timestamp() * 1000), name, text)


def _in_range(ms: int, name: str, text: str) -> int:
    if not 0 <= ms <= MAX_TS_MS:
        raise ParamError(f"{name} {text!r} is outside 1970-01-01 .. 9999-12-31")
    return ms


def parse_step(text: str) -> int:
    """A bucket width: `5s`, `1m`, `1h`, `1d` or a plain number of ms."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if value <= 0 or value > MAX_TS_MS:
            raise ParamError(f"step {text!r} must be between 1 ms and 10000 years")
        return value
    return parse_duration_ms(text, "step")


def check_entity_glob(pattern: str) -> str:
    """An entity glob: segments of letters, digits and `_.:-`, with `*` `?` `[...]` inside a
    segment, or `**` as a whole segment (any number of segments)."""
    if not pattern or len(pattern) > MAX_GLOB_LENGTH:
        raise ParamError(
            f"entity pattern must be 1..{MAX_GLOB_LENGTH} characters, like c01/r01/s01 or c01/**"
        )
    for segment in pattern.split("/"):
        problem = _segment_problem(segment)
        if problem is not None:
            raise ParamError(
                f"bad entity pattern {pattern!r}: segment {segment!r} {problem}; "
                "use `*` for one segment and `**` for any number, e.g. c01/*/s01/**"
            )
    return pattern


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "is empty (two slashes, or a slash at an end)"
    if not _ENTITY_SEGMENT.match(segment):
        return "may hold only letters, digits, _.:- and the wildcards * ? [ ]"
    if "**" in segment and segment != "**":
        return "mixes ** with other characters (** must be a whole segment)"
    if not _brackets_closed(segment):
        return "has an unclosed ["
    return None


def check_metric_globs(patterns: Sequence[str] | None) -> list[str] | None:
    """Metric names or globs (`fan_*`); None or an empty list means every metric."""
    if not patterns:
        return None
    if len(patterns) > MAX_METRICS:
        raise ParamError(f"at most {MAX_METRICS} metric patterns, got {len(patterns)}")
    for p in patterns:
        if not p or len(p) > MAX_GLOB_LENGTH or not _METRIC_GLOB.match(p):
            raise ParamError(
                f"bad metric {p!r}: use a metric name like cpu_temperature_celsius "
                "or a glob like fan_* (letters, digits, _ and : with * ? [ ])"
            )
        if not _brackets_closed(p):
            raise ParamError(f"bad metric glob {p!r}: unclosed [")
    return list(patterns)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _brackets_closed(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "[":
            if depth:
                return False
            depth = 1
        elif ch == "]":
            if not depth:
                return False
            depth = 0
    return depth == 0


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with a `Z`, to the millisecond.

    >>> iso(1767225600123)
    '2026-01-01T00:00:00.123Z'
    """
    when = _EPOCH + dt.timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
