"""Tool results: compact JSON, numbers rounded, and bounded in size.

An assistant reads every character of a result, so results are JSON without spaces, floats
cut to 6 significant digits, and never more than `MAX_TEXT_CHARS`: each tool caps its own
rows first (and says so), and `bounded` cuts whatever is still too long (the answers of
routes whose shape this package does not know, such as reports), saying how much it left out.

>>> rounded({"t": 45.678912345, "n": [1, 0.1234567891, None]})
{'t': 45.6789, 'n': [1, 0.123457, None]}
>>> text_of({"a": [1, 2]})
'{"a":[1,2]}'
>>> bounded({"rows": list(range(5000))}, max_chars=200)["note"][:40]
'the answer was cut to fit: 4990 items le'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

MAX_TEXT_CHARS: Final = 60_000
"""The most characters of JSON one tool result holds (about 15,000 tokens)."""
_CUTS: Final = (1000, 300, 100, 30, 10, 3)
"""How many items each list or object keeps, tried in turn until the answer fits."""


def rounded(value: Any) -> Any:
    """`value` with every float cut to 6 significant digits (NaN and infinities as None)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return value


def text_of(value: Any) -> str:
    return orjson.dumps(value).decode()


def bounded(payload: dict[str, Any], max_chars: int = MAX_TEXT_CHARS) -> dict[str, Any]:
    """`payload` if its JSON fits in `max_chars`; else a copy whose lists and objects keep
    their first items only, with a `note` saying how many were left out."""
    if len(text_of(payload)) <= max_chars:
        return payload
    for keep in _CUTS:
        left_out = [0]
        trimmed: dict[str, Any] = _trim(payload, keep, left_out)
        trimmed["truncated"] = True
        trimmed["note"] = (
            f"the answer was cut to fit: {left_out[0]} items left out (each list or object "
            f"keeps its first {keep}); narrow the request (entity, metric, time range, limit)"
        )
        if len(text_of(trimmed)) <= max_chars:
            return trimmed
    raise ToolError("the answer is too large even when cut: narrow the request")


def _trim(value: Any, keep: int, left_out: list[int]) -> Any:
    if isinstance(value, Mapping):
        items = list(value.items())
        left_out[0] += max(0, len(items) - keep)
        return {key: _trim(item, keep, left_out) for key, item in items[:keep]}
    if isinstance(value, list | tuple):
        left_out[0] += max(0, len(value) - keep)
        return [_trim(item, keep, left_out) for item in value[:keep]]
    return value


def result(payload: dict[str, Any]) -> CallToolResult:
    """A tool's answer: the rounded, bounded payload as compact JSON text (what every client
    shows the model) and as structured content (for clients that read it)."""
    shaped = bounded(rounded(payload))
    return CallToolResult(
        content=[TextContent(type="text", text=text_of(shaped))], structured_content=shaped
    )


def first(rows: Sequence[Any], limit: int, what: str, hint: str) -> tuple[list[Any], str | None]:
    """The first `limit` rows, and a note when some were left out (`what`: "alerts"; `hint`:
    how to see the others)."""
    if len(rows) <= limit:
        return list(rows), None
    return list(rows[:limit]), f"showing {limit} of {len(rows)} {what}: {hint}"


def drop_empty(row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` without its null, empty and false fields (they cost tokens and say nothing);
    numbers are kept whatever their value, 0 included.

    >>> drop_empty({"a": None, "b": 0, "c": "", "d": [], "e": False, "f": "x"})
    {'b': 0, 'f': 'x'}
    """
    return {
        key: value
        for key, value in row.items()
        if value is not None and value is not False and value != "" and value != [] and value != {}
    }
