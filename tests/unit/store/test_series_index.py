"""Selecting series by entity and metric globs (`match_series`, `SeriesIndex`): the same
answers as matching each key, and a cost that does not grow with the pattern (issue 8)."""

from __future__ import annotations

import fnmatch
import random
import time

from rackwatch.model import SeriesKey, SeriesRegistry
from rackwatch.model.entity import matches
from rackwatch.store.results import SeriesIndex, match_series

WORST = "/".join(["**"] * 23 + ["x"])
"""The issue's pattern: 24 segments, 81 characters."""


def room_keys(clusters: int = 100) -> list[SeriesKey]:
    """The series of `clusters` x 20 servers as the twin names them (26,405 for 100)."""
    keys = [SeriesKey("room", m) for m in ("pue_ratio", "it_power_watts", "facility_power_watts")]
    keys += [SeriesKey("room/crac1", m) for m in ("supply_temperature_celsius", "power_watts")]
    for c in range(1, clusters + 1):
        for r in (1, 2):
            rack = f"c{c:02}/r{r:02}"
            keys += [SeriesKey(f"{rack}/pdu", m) for m in ("power_watts", "current_amperes")]
            for s in range(1, 11):
                server = f"{rack}/s{s:02}"
                keys += [SeriesKey(server, f"server_metric_{i}") for i in range(7)]
                for f in (1, 2):
                    keys += [
                        SeriesKey(f"{server}/fan{f}", m) for m in ("fan_rpm", "fan_level", "x")
                    ]
    return keys


def expected(keys: list[SeriesKey], entity: str, metrics: list[str] | None) -> list[int]:
    return [
        i
        for i, k in enumerate(keys)
        if matches(k.entity, entity)
        and (metrics is None or any(fnmatch.fnmatchcase(k.metric, m) for m in metrics))
    ]


def test_same_answers_as_matching_each_key() -> None:
    rng = random.Random(8)
    keys = room_keys(3)
    index = SeriesIndex(keys)
    globs = ["**", "*", "c0?", "c01", "r0[12]", "s0*", "*1", "fan?", "pdu", "room", "crac1"]
    metric_choices: list[list[str] | None] = [None, ["fan_*"], ["power_watts", "x"], ["nope"]]
    for _ in range(500):
        entity = "/".join(rng.choice(globs) for _ in range(rng.randint(1, 5)))
        metrics = rng.choice(metric_choices)
        want = expected(keys, entity, metrics)
        assert index.select(entity, metrics).tolist() == want, (entity, metrics)
        assert match_series(keys, entity, metrics).tolist() == want


def test_the_index_follows_a_growing_registry() -> None:
    registry = SeriesRegistry()
    index = SeriesIndex()
    registry.intern("c01/r01/s01", "power_watts")
    index.follow(registry)
    assert index.select("c01/r01/s01/**", None).tolist() == [0]
    registry.intern("c01/r01/s01/fan1", "fan_rpm")
    registry.intern("c01/r01/s02", "power_watts")
    index.follow(registry)
    index.follow(registry)  # nothing new: nothing added twice
    assert len(index) == 3
    assert index.select("c01/r01/s01/**", None).tolist() == [0, 1]
    assert index.select("**", "power_watts").tolist() == [0, 2]


def test_a_pattern_with_many_states_still_matches() -> None:
    """More pattern segments than bits in a uint64: matched one entity at a time."""
    keys = [SeriesKey("/".join(["a"] * n), "m") for n in (39, 40, 45)]
    assert match_series(keys, "/".join(["**", "a"] * 40), None).tolist() == [1, 2]
    assert match_series(keys, "/".join(["*"] * 40), None).tolist() == [1]


def test_selecting_from_26405_series_with_the_worst_pattern_is_fast() -> None:
    """Before: 168 s for the issue's pattern over the series of 2,000 servers (one recursive
    match per entity); now the index is built once, and a selection is a few NumPy passes."""
    keys = room_keys()
    assert len(keys) == 26_405
    start = time.perf_counter()
    index = SeriesIndex(keys)
    assert index.select("**/fan1", None).size == 6000
    built = time.perf_counter() - start
    assert built < 1.0, f"building the index took {built:.2f} s"
    times = []
    for pattern in (WORST, "/".join(["**", "*[a-z]*[0-9]*"] * 4 + ["*"] * 8), "**/**/**/fan2"):
        start = time.perf_counter()
        found = index.select(pattern, ["fan_*", "x"])
        times.append(time.perf_counter() - start)
        assert found.size == (6000 if pattern.endswith("fan2") else 0)
    assert max(times) < 0.05, times
    start = time.perf_counter()
    assert match_series(keys, WORST, None).size == 0  # index built and dropped
    assert time.perf_counter() - start < 1.0
