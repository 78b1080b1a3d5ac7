"""Parsing of user-facing query values: times, steps, entity and metric globs.

Pure functions that raise `ParamError` with a message saying what is wrong and what to send
instead; routes turn it into a 400 and the WebSocket into an `INVALID_FILTER` error. Every
number they return is bounded (times within 1970..9999, durations and steps up to that span),
and a message quotes bad input as a short `excerpt`, never whole.

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
from typing import Any

from rackwatch.model import entity as entity_path
from rackwatch.model.times import MAX_TS_MS as MAX_TS_MS  # re-exported: the schemas bound times
from rackwatch.model.times import iso as iso  # re-exported: the routes show times

MAX_GLOB_LENGTH = 512
MAX_METRICS = 100
MAX_TIME_LENGTH = 64
"""Longer than any time or duration we parse: refused before parsing."""
EXCERPT_LENGTH = 40

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)$")
_WHOLE = re.compile(r"^-?[0-9]+$")
_ENTITY_SEGMENT = re.compile(r"^[A-Za-z0-9_.:\-*?\[\]!]+$")
_METRIC_GLOB = re.compile(r"^[A-Za-z0-9_:*?\[\]!]+$")


class ParamError(ValueError):
    """A query value is malformed; the message says which and what would be accepted."""


def excerpt(value: Any, limit: int = EXCERPT_LENGTH) -> str:
    """The repr of `value`, cut to about `limit` characters: enough to recognise bad input
    without sending a 10 MB field back.

    >>> excerpt("c01/r01")
    "'c01/r01'"
    >>> excerpt("9" * 400)
    "'9999999999999999999999999999999999999999…' (400 characters)"
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    cut = repr(text[:limit] + "…") if isinstance(value, str) else text[:limit] + "…"
    return f"{cut} ({len(text)} characters)"


def parse_duration_ms(text: str, name: str = "duration") -> int:
    """`30s`, `5m`, `6h`, `7d`, `2w`, `250ms` as a positive number of ms, at most the span
    1970..9999.

    >>> parse_duration_ms("1.5h")
    5400000
    """
    match = _DURATION.match(_short(text, name).strip())
    if match is None:
        raise ParamError(
            f"{name} {excerpt(text)} is not a duration like 250ms, 30s, 5m, 6h, 7d or 2w"
        )
    value = float(match.group(1)) * _UNITS_MS[match.group(2)]
    if not value <= MAX_TS_MS:  # also inf, from hundreds of digits
        raise ParamError(f"{name} {excerpt(text)} is too long: at most {MAX_TS_MS:,} ms")
    if int(value) <= 0:
        raise ParamError(f"{name} {excerpt(text)} must be more than 0 ms")
    return int(value)


def time_range(from_: str, to: str, *, now_ms: int) -> tuple[int, int]:
    """`from` and `to` parsed (`parse_time`), `from` strictly before `to`."""
    start = parse_time(from_, now_ms=now_ms, name="from")
    end = parse_time(to, now_ms=now_ms, name="to")
    if end <= start:
        raise ParamError(f"from ({start}) must be before to ({end})")
    return start, end


def parse_time(text: str, *, now_ms: int, name: str = "time") -> int:
    """Epoch ms from an integer (ms), an ISO 8601 time (UTC when no zone is given), `now`, or
    `-<duration>` before now (`-6h`); within 1970..9999."""
    text = _short(text, name).strip()
    if text == "now":
        return now_ms
    if _WHOLE.match(text):
        return _in_range(int(text), name, text)
    if text.startswith("-"):
        return _in_range(now_ms - parse_duration_ms(text[1:], name), name, text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParamError(
            f"{name} {excerpt(text)} is not a time: give epoch ms (1767225600000), ISO 8601 "
            "(2026-01-01T00:00:00Z), 'now' or a duration before now ('-6h')"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return _in_range(round(when.timestamp() * 1000), name, text)


def _short(text: str, name: str) -> str:
    """`text` if it is short enough to be a time or a duration; ParamError otherwise (before
    any parsing: int() of thousands of digits is slow, then refused anyway)."""
    if len(text) > MAX_TIME_LENGTH:
        raise ParamError(
            f"{name} {excerpt(text)} is too long for a time or duration "
            f"(at most {MAX_TIME_LENGTH} characters)"
        )
    return text


def _in_range(ms: int, name: str, text: str) -> int:
    if not 0 <= ms <= MAX_TS_MS:
        raise ParamError(f"{name} {excerpt(text)} is outside 1970-01-01 .. 9999-12-31")
    return ms


def parse_step(text: str) -> int:
    """A bucket width: `5s`, `1m`, `1h`, `1d` or a plain number of ms, at most the span
    1970..9999."""
    text = _short(text, "step").strip()
    if _WHOLE.match(text):
        value = int(text)
        if not 0 < value <= MAX_TS_MS:
            raise ParamError(f"step {excerpt(text)} must be between 1 ms and 10000 years")
        return value
    return parse_duration_ms(text, "step")


def check_entity_glob(pattern: str) -> str:
    """An entity glob: segments of letters, digits and `_.:-`, with `*` `?` `[...]` inside a
    segment, or `**` as a whole segment (any number of segments); at most
    `entity_path.MAX_PATTERN_LENGTH` characters, `MAX_PATTERN_SEGMENTS` segments and
    `MAX_PATTERN_ANY_DEPTH` `**` (docs/API.md, Selectors)."""
    if not pattern or len(pattern) > entity_path.MAX_PATTERN_LENGTH:
        raise ParamError(
            f"entity pattern {excerpt(pattern)} must be 1..{entity_path.MAX_PATTERN_LENGTH} "
            "characters, like c01/r01/s01 or c01/**"
        )
    segments = pattern.split("/")
    if len(segments) > entity_path.MAX_PATTERN_SEGMENTS:
        raise ParamError(
            f"entity pattern {excerpt(pattern)} has {len(segments)} segments, more than "
            f"{entity_path.MAX_PATTERN_SEGMENTS}: entity paths are a few segments deep "
            "(c01/r01/s01/fan1); use ** for any number of them"
        )
    n_any = segments.count(entity_path.ANY_DEPTH)
    if n_any > entity_path.MAX_PATTERN_ANY_DEPTH:
        raise ParamError(
            f"entity pattern {excerpt(pattern)} has {n_any} `**`, more than "
            f"{entity_path.MAX_PATTERN_ANY_DEPTH}: one `**` already spans any number of "
            "segments (c01/**, **/fan1)"
        )
    for segment in segments:
        problem = _segment_problem(segment)
        if problem is not None:
            raise ParamError(
                f"bad entity pattern {excerpt(pattern)}: segment {excerpt(segment)} {problem}; "
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
                f"bad metric {excerpt(p)}: use a metric name like cpu_temperature_celsius "
                f"or a glob like fan_* (letters, digits, _ and : with * ? [ ], at most "
                f"{MAX_GLOB_LENGTH} characters)"
            )
        if not _brackets_closed(p):
            raise ParamError(f"bad metric glob {excerpt(p)}: unclosed [")
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
