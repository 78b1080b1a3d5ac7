"""Tool results stay small and readable: floats rounded, NaN as null, every answer under the
size bound with a note saying what was left out."""

from __future__ import annotations

import json
import math

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from rackwatch.mcp_server import shaping


def test_floats_are_rounded_and_non_finite_values_are_null() -> None:
    shaped = shaping.rounded({"a": [math.nan, math.inf, 1234567.891, 1e-9], "b": {"c": 2}})
    assert shaped == {"a": [None, None, 1234570.0, 1e-9], "b": {"c": 2}}


def test_a_long_answer_is_cut_to_fit_and_says_so() -> None:
    payload = {
        "entities": {f"c01/r01/s{i:03d}": {"values": list(range(50))} for i in range(400)},
        "n": 400,
    }
    result = shaping.result(payload)
    text = result.content[0].text  # type: ignore[union-attr]
    assert len(text) <= shaping.MAX_TEXT_CHARS
    body = json.loads(text)
    assert body["truncated"] is True
    assert body["n"] == 400  # scalars are kept whole
    assert 0 < len(body["entities"]) < 400
    assert "items left out" in body["note"]
    assert result.structured_content == body


def test_a_short_answer_is_untouched_and_compact() -> None:
    result = shaping.result({"entity": "c01/r01/s01", "value": 40.123456789})
    assert result.content[0].text == '{"entity":"c01/r01/s01","value":40.1235}'  # type: ignore[union-attr]


def test_an_answer_that_cannot_be_cut_enough_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="too large even when cut"):
        shaping.bounded({"text": "x" * 100}, max_chars=50)


def test_first_rows_and_the_note_on_what_was_left_out() -> None:
    assert shaping.first([1, 2, 3], 5, "alerts", "narrow it") == ([1, 2, 3], None)
    assert shaping.first([1, 2, 3], 2, "alerts", "narrow it") == (
        [1, 2],
        "showing 2 of 3 alerts: narrow it",
    )
