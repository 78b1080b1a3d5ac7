"""Parsing of query values, and the doctests of the API's pure modules."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from rackwatch.api import encode, params, prometheus
from rackwatch.api.params import (
    ParamError,
    check_entity_glob,
    check_metric_globs,
    parse_step,
    parse_time,
)

NOW = 1_767_225_600_000


@pytest.mark.parametrize("module", [params, encode, prometheus], ids=lambda m: m.__name__)
def test_doctests(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("now", NOW),
        ("-30s", NOW - 30_000),
        ("-1.5h", NOW - 5_400_000),
        ("-2w", NOW - 14 * 86_400_000),
        ("1767225600000", NOW),
        ("0", 0),
        ("2026-01-01", NOW),
        ("2026-01-01T01:00:00+01:00", NOW),
        ("2026-01-01T00:00:00.250Z", NOW + 250),
    ],
)
def test_times(text: str, ms: int) -> None:
    assert parse_time(text, now_ms=NOW) == ms


@pytest.mark.parametrize(
    "text", ["", "soon", "-", "-h", "1e5", "12:00", "-1000000000w", "-5", "99999999999999999"]
)
def test_bad_times(text: str) -> None:
    with pytest.raises(ParamError):
        parse_time(text, now_ms=NOW)


def test_steps() -> None:
    assert [parse_step(s) for s in ("1", "250ms", "5s", "1m", "1h", "1d")] == [
        1,
        250,
        5_000,
        60_000,
        3_600_000,
        86_400_000,
    ]
    for bad in ("0", "1x", "m", "-1m", "1.5", "0.0001s"):
        with pytest.raises(ParamError):
            parse_step(bad)


def test_globs() -> None:
    for good in ("**", "c01/**", "c01/*/s0[1-3]/fan?", "room/crac1", "host/db-1.lan/gpu0"):
        assert check_entity_glob(good) == good
    for bad in ("", "/c01", "c01/", "c01//r01", "c0**", "c01/[r", "c01/r]", "a b", "x" * 600):
        with pytest.raises(ParamError):
            check_entity_glob(bad)
    assert check_metric_globs(None) is None and check_metric_globs([]) is None
    assert check_metric_globs(["fan_*", "power_watts"]) == ["fan_*", "power_watts"]
    for bad_list in (["a b"], [""], ["fan_[x"], ["m"] * 101):
        with pytest.raises(ParamError):
            check_metric_globs(bad_list)
