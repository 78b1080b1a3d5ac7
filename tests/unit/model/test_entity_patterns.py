"""Entity globs: the one matching rule (`**` takes any number of segments, also none), the
same answers as a plain recursive reference, and a cost linear in the path and the pattern
whatever the pattern (issue 8: 24 `**` segments took seconds on the event loop)."""

from __future__ import annotations

import fnmatch
import random
import time

import pytest

from rackwatch.model import entity
from rackwatch.model.entity import compile_pattern, matches


def reference(path: str, pattern: str) -> bool:
    """The rule written plainly (exponential in the number of `**`: small inputs only)."""

    def match(segments: list[str], globs: list[str]) -> bool:
        if not globs:
            return not segments
        head, rest = globs[0], globs[1:]
        if head == "**":
            return any(match(segments[i:], rest) for i in range(len(segments) + 1))
        return (
            bool(segments) and fnmatch.fnmatchcase(segments[0], head) and match(segments[1:], rest)
        )

    return match(path.split("/"), pattern.split("/"))


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("c01/r01/s01", "c01/r01/s01/**", True),  # ** takes no segment: the server itself
        ("c01/r01/s01/fan1", "c01/r01/s01/**", True),
        ("c01/r01/s01", "c01/r01/s01/*", False),  # * takes exactly one
        ("c01/r01/s010", "c01/r01/s01/**", False),
        ("c01", "c01/**", True),
        ("c01/r01/s01/fan1", "**/fan1", True),
        ("fan1", "**/fan1", True),
        ("c01/r01/s01/fan1", "c01/**/**/fan?", True),
        ("c01/r01/s01/fan1", "c01/**/s01/**/fan1", True),
        ("c01/r01/s02/fan1", "c01/*/s0[!2]/**", False),
        ("c01/r01/s03/fan1", "c01/*/s0[1-3]/*", True),
        ("room", "**", True),
        ("room", "room", True),
        ("room/crac1", "room", False),
        ("c01/r01/s01", "c01/r0*/s01", True),
        ("c01/r01/s01", "c01/r0*", False),
    ],
)
def test_the_rule(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected
    assert reference(path, pattern) is expected


def test_same_answers_as_the_reference_on_random_paths_and_globs() -> None:
    rng = random.Random(8)
    names = ["c01", "r01", "s01", "fan1", "a", "ab", "b"]
    globs = ["**", "*", "?", "a*", "*b", "[ab]", "[!a]*", "fan?", "c0[1-2]", "s01", "*a*b*"]
    for _ in range(5000):
        path = "/".join(rng.choice(names) for _ in range(rng.randint(1, 6)))
        pattern = "/".join(rng.choice(globs) for _ in range(rng.randint(1, 7)))
        assert matches(path, pattern) is reference(path, pattern), (path, pattern)


def test_a_pattern_is_compiled_once_in_a_bounded_cache() -> None:
    pattern = "c01/**/s0[1-3]/fan?"
    assert compile_pattern(pattern) is compile_pattern(pattern)
    assert compile_pattern.cache_info().maxsize == 256
    assert compile_pattern("**/**/**/x").segments == ("**", "x")  # runs of ** merged


def test_24_any_depth_segments_cost_microseconds_not_seconds() -> None:
    """The issue's request: `**/**/…/x`, 24 segments (81 characters); before, matching it
    against one fan path took about 50 ms (C(27, 4) recursive calls), so 100 fans 5 s."""
    pattern = "/".join(["**"] * 23 + ["fan9"])
    paths = [f"c01/r{r:02}/s{s:02}/fan{f}" for r in range(5) for s in range(10) for f in (1, 2)]
    start = time.perf_counter()
    found = [p for p in paths if matches(p, pattern)]
    elapsed = time.perf_counter() - start
    assert found == []
    assert elapsed < 0.2, f"{len(paths)} matches took {elapsed:.2f} s"


def test_cost_stays_linear_for_the_longest_patterns_and_paths() -> None:
    """About 500 characters of `**/*/` (under the old length limit) against paths of up to
    200 segments, and a segment of 100 `*` against a 1,000-character name: the automaton
    tests each path segment against each pattern segment once, and `fnmatch` keeps each `*`
    but the last atomic, so neither backtracks."""
    long_pattern = "/".join(["**", "*"] * 100) + "/x"  # 100 segments, then x
    assert len(long_pattern) == 501
    long_path = "/".join(["a"] * 200)
    stars = "*a" * 100 + "*b"
    start = time.perf_counter()
    assert matches(long_path, long_pattern) is False
    assert matches(long_path + "/x", long_pattern) is True
    assert matches("/".join(["a"] * 99) + "/x", long_pattern) is False
    assert matches("a" * 1000, stars) is False
    assert matches("a" * 1000 + "b", stars) is True
    assert time.perf_counter() - start < 0.2


@pytest.mark.parametrize(
    ("pattern", "segments"),
    [("c01/r01/s01", 3), ("c01/**", 2), ("**/**/a/**", 3), ("**", 1)],
)
def test_compiled_segments(pattern: str, segments: int) -> None:
    assert len(compile_pattern(pattern).segments) == segments
    assert compile_pattern(pattern).n_states == segments + 1


def test_limits_for_user_patterns_are_declared() -> None:
    assert entity.MAX_PATTERN_LENGTH <= 512
    assert entity.MAX_PATTERN_ANY_DEPTH < entity.MAX_PATTERN_SEGMENTS < 64
