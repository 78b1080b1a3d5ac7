"""GPU recommendation (engine/recommend): the like index at its thresholds, like_server's order
and ties, placement's filters, ranking and reasons, excluded machines, and a fleet whose
inventory says little or nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rackwatch.engine.recommend import (
    GIB,
    Assessment,
    Fleet,
    Job,
    Like,
    LikeThresholds,
    assess,
    exclusion,
    exclusions,
    fleet_layout,
    gather,
)

Readings = dict[str, dict[str, float]]


def fleet_of(
    readings: Readings, inventory: dict[str, dict[str, Any]] | None = None, ts_ms: int = 1_000
) -> Fleet:
    """The fleet of these newest values (all at `ts_ms`), as the live state would hold them;
    a few series of other metrics and entities ride along, as in a real registry."""
    rows = [(e, m, v) for e, metrics in readings.items() for m, v in metrics.items()]
    rows += [("c09/r01/s01/fan1", "fan_rpm", 5000.0), ("room", "pue_ratio", 1.4)]
    keys = [(e, m) for e, m, _ in rows]
    ids = np.arange(len(rows)) + 3  # ids need not start at 0
    ts = np.full(len(rows) + 3, -1, dtype=np.int64)
    value = np.full(len(rows) + 3, np.nan)
    ts[ids] = ts_ms
    value[ids] = [v for _, _, v in rows]
    return gather(fleet_layout(keys, ids), ts, value, inventory or {})


def card(free_gib: float, util: float, used_gib: float | None = None) -> dict[str, float]:
    values = {"gpu_memory_free_bytes": free_gib * GIB, "gpu_utilization_ratio": util}
    if used_gib is not None:
        values["gpu_memory_used_bytes"] = used_gib * GIB
    return values


def machine(name: str, cards: list[dict[str, float]], cpu: float = 0.1, **more: float) -> Readings:
    out: Readings = {name: {"cpu_utilization_ratio": cpu, **more}}
    for k, values in enumerate(cards):
        out[f"{name}/gpu{k}"] = values
    return out


def assessed(readings: Readings, excluded: dict[str, str] | None = None, **kw: Any) -> Assessment:
    fleet = fleet_of(readings, **kw)
    return assess(fleet, [(excluded or {}).get(m) for m in fleet.machines])


def row(a: Assessment, name: str) -> int:
    return a.fleet.machines.index(name)


# --------------------------------------------------------------------------- the fleet


def test_machines_and_cards_come_from_gpu_paths_real_and_twin() -> None:
    fleet = fleet_of(
        {
            **machine("host/dgx", [card(10, 0.0), card(20, 0.5)]),
            **machine("c01/r01/s01", [card(30, 0.1)]),
            "c01/r01/s02": {"cpu_utilization_ratio": 0.5},  # no card: not a GPU machine
        }
    )
    assert fleet.machines == ("c01/r01/s01", "host/dgx")
    assert fleet.cards == ("c01/r01/s01/gpu0", "host/dgx/gpu0", "host/dgx/gpu1")
    assert fleet.card_machine.tolist() == [0, 1, 1]
    assert fleet.n_cards.tolist() == [1, 2]
    assert fleet.card_free_bytes.tolist() == [30 * GIB, 10 * GIB, 20 * GIB]


def test_sizes_come_from_the_inventory_else_from_used_plus_free() -> None:
    inventory = {
        "host/a": {"logical_cores": 64, "memory_total_bytes": 256 * GIB},
        "host/a/gpu0": {"name": "NVIDIA H100", "memory_total_bytes": 80 * GIB},
        "host/b": {"gpu_model": "TITAN Xp", "gpu_memory_limit_bytes": 12 * GIB, "cores": 16},
    }
    fleet = fleet_of(
        {
            **machine("host/a", [card(60, 0.2, used_gib=20), card(10, 0.1, used_gib=2)]),
            **machine("host/b", [{"gpu_memory_used_bytes": 4 * GIB}]),
            "host/a": {"memory_used_bytes": 56 * GIB},  # no available: total less used
        },
        inventory,
    )
    assert fleet.card_total_bytes.tolist() == [80 * GIB, 12 * GIB, 12 * GIB]
    assert fleet.card_free_bytes[2] == 8 * GIB  # the machine's card size less used
    assert fleet.card_model == ("NVIDIA H100", None, "TITAN Xp")
    assert fleet.cores.tolist() == [64, 16]
    assert fleet.memory_available_bytes[0] == 200 * GIB
    assert np.isnan(fleet.memory_available_bytes[1])


def test_inventory_cards_that_never_sent_a_value_are_counted_and_unknown() -> None:
    inventory = {"host/a/gpu1": {"index": 1}, "host/z/gpu0": {"name": "A100"}}
    fleet = fleet_of(machine("host/a", [card(10, 0.0)]), inventory)
    assert fleet.machines == ("host/a", "host/z")
    assert fleet.cards == ("host/a/gpu0", "host/a/gpu1", "host/z/gpu0")
    assert np.isnan(fleet.card_free_bytes[1:]).all()
    assert fleet.last_seen_ms.tolist() == [1_000, -1]


# --------------------------------------------------------------------------- like index


@pytest.mark.parametrize(
    ("load", "level"),
    [
        (0.0, Like.HIGH),
        (0.299, Like.HIGH),
        (0.3, Like.MEDIUM),
        (0.699, Like.MEDIUM),
        (0.7, Like.LOW),
        (1.0, Like.LOW),
    ],
)
def test_like_index_levels_at_the_thresholds(load: float, level: Like) -> None:
    a = assessed(machine("host/a", [card(10, load, used_gib=0)], cpu=0.0))
    assert a.like == (level,)


@pytest.mark.parametrize(
    ("gpu", "used_share", "cpu", "level", "decided_by"),
    [
        (0.0, 0.9, 0.0, Like.LOW, "GPU memory"),  # idle cards, memory full: cannot take a job
        (0.0, 0.0, 0.75, Like.LOW, "CPU"),
        (0.5, 0.1, 0.1, Like.MEDIUM, "GPUs"),
        (0.1, 0.1, 0.1, Like.HIGH, "all under 30 %"),
    ],
)
def test_the_highest_signal_decides_and_the_why_says_which(
    gpu: float, used_share: float, cpu: float, level: Like, decided_by: str
) -> None:
    used = 40 * used_share
    a = assessed(machine("host/a", [card(40 - used, gpu, used_gib=used)], cpu=cpu))
    assert a.like == (level,)
    assert decided_by in a.why(0)


def test_custom_thresholds_move_the_levels() -> None:
    fleet = fleet_of(machine("host/a", [card(10, 0.4, used_gib=0)], cpu=0.0))
    strict = LikeThresholds(high_below_ratio=0.5, low_from_ratio=0.9)
    assert assess(fleet, [None], strict).like == (Like.HIGH,)


@pytest.mark.parametrize(
    "values", [(0.5, 0.3, 0.8), (0.0, 0.7, 0.8), (0.3, 0.7, 1.5), (float("nan"), 0.7, 0.8)]
)
def test_thresholds_out_of_order_or_range_are_refused(values: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="ratio"):
        LikeThresholds(*values)


def test_a_machine_with_no_value_has_no_level_and_says_so() -> None:
    fleet = fleet_of({}, {"host/a/gpu0": {"name": "A100"}})
    a = assess(fleet, [None])
    assert a.like == (None,)
    assert "no GPU" in a.why(0)


# --------------------------------------------------------------------------- like_server


def test_like_server_is_the_top_3_by_free_memory_ties_by_utilisation_then_name() -> None:
    a = assessed(
        {
            **machine("host/e", [card(10, 0.0)]),
            **machine("host/d", [card(30, 0.5)]),
            **machine("host/c", [card(30, 0.2)]),  # same free as d, less busy: before d
            **machine("host/b", [card(20, 0.2), card(20, 0.2)]),  # 40 in all: first
            **machine("host/a", [card(30, 0.5)]),  # ties d exactly: a before d by name
        }
    )
    assert [a.fleet.machines[r] for r in a.top] == ["host/b", "host/c", "host/a"]


def test_like_server_ranks_by_the_memory_free_on_cards_that_are_not_busy() -> None:
    a = assessed(
        {
            **machine("host/a", [card(70, 0.95), card(70, 0.9)]),  # 140 free, all on busy cards
            **machine("host/b", [card(40, 0.1), card(0, 0.9)]),  # 40 free on an idle card
            **machine("host/c", [card(30, 0.0)]),
        }
    )
    assert [a.fleet.machines[r] for r in a.top] == ["host/b", "host/c", "host/a"]


def test_like_server_skips_excluded_and_full_machines_and_may_be_short() -> None:
    a = assessed(
        {
            **machine("host/a", [card(80, 0.0)]),
            **machine("host/b", [card(0, 0.0)]),
            **machine("host/c", [card(5, 0.9)]),
        },
        excluded={"host/a": "offline: nothing received for 90 s"},
    )
    assert [a.fleet.machines[r] for r in a.top] == ["host/c"]
    assert a.like[row(a, "host/a")] is None
    assert a.why(row(a, "host/a")).startswith("offline")


# --------------------------------------------------------------------------- placement


def test_placement_counts_only_cards_with_the_memory_free_and_not_busy() -> None:
    a = assessed(
        {
            # 3 fitting cards (20 GiB free or more, not busy): takes 2
            **machine("host/a", [card(24, 0.1), card(40, 0.0), card(20, 0.2), card(8, 0.0)]),
            # 2 with the memory, but one at 90 %: only 1 fits
            **machine("host/b", [card(70, 0.9), card(70, 0.0)]),
            # every card too small
            **machine("host/c", [card(19.9, 0.0), card(10, 0.0)]),
        }
    )
    p = a.place(Job(gpus=2, gpu_memory_gb=20))
    assert [a.fleet.machines[c.row] for c in p.candidates] == ["host/a"]
    best = p.candidates[0]
    assert [a.fleet.cards[k] for k in best.cards] == ["host/a/gpu1", "host/a/gpu0"]
    assert best.n_fit == 3
    assert best.tightest_free_bytes == 24 * GIB and best.headroom_bytes == 4 * GIB
    assert "3 of 4 cards fit; takes gpu1, gpu0" in best.why
    why = {a.fleet.machines[r.row]: r.why for r in p.rejected}
    assert why["host/b"] == "1 of 2 cards fit, 2 needed (1 busy (≥ 80 %))"
    assert why["host/c"] == "0 of 2 cards fit, 2 needed (2 with under 20.0 GiB free)"
    assert (p.n_candidates, p.n_rejected) == (1, 2)


def test_placement_ranks_by_headroom_then_card_utilisation_then_cpu_then_name() -> None:
    a = assessed(
        {
            **machine("host/a", [card(30.2, 0.5)]),  # 10 GiB to spare, 50 % busy
            **machine("host/b", [card(30.9, 0.1)]),  # same whole GiB to spare, 10 %: before a
            **machine("host/c", [card(60, 0.7)]),  # most headroom: first, however busy
            **machine("host/d", [card(30.5, 0.1)], cpu=0.6),  # as b but a busier CPU: after b
            **machine("host/e", [card(30.5, 0.1)], cpu=0.6),  # as d: after d by name
        }
    )
    p = a.place(Job(gpus=1, gpu_memory_gb=20))
    order = [a.fleet.machines[c.row] for c in p.candidates]
    assert order == ["host/c", "host/b", "host/d", "host/e", "host/a"]


def test_placement_checks_cores_and_memory_when_known_and_says_when_not() -> None:
    inventory = {"host/a": {"logical_cores": 64}, "host/b": {"logical_cores": 16}}
    a = assessed(
        {
            **machine("host/a", [card(40, 0.0)], cpu=0.5, memory_available_bytes=100 * GIB),
            **machine("host/b", [card(40, 0.0)], cpu=0.5, memory_available_bytes=100 * GIB),
            **machine("host/c", [card(40, 0.0)], cpu=0.5),  # no cores, no memory known
            **machine("host/d", [card(40, 0.0)], memory_available_bytes=8 * GIB),
        },
        inventory=inventory,
    )
    p = a.place(Job(gpus=1, gpu_memory_gb=10, cores=16, memory_gb=32))
    took = {a.fleet.machines[c.row]: c for c in p.candidates}
    assert sorted(took) == ["host/a", "host/c"]
    assert took["host/a"].cores_free == 32
    assert "32 of 64 cores free" in took["host/a"].why
    assert "cores not checked (the inventory gives no core count)" in took["host/c"].why
    assert "memory not checked" in took["host/c"].why
    why = {a.fleet.machines[r.row]: r.why for r in p.rejected}
    assert why["host/b"] == "8.0 of 16 cores free, 16 needed"
    assert "8.0 GiB memory available, 32.0 GiB needed" in why["host/d"]


def test_offline_machines_are_never_candidates_and_are_listed_last_with_the_reason() -> None:
    a = assessed(
        {
            **machine("host/a", [card(80, 0.0)] * 8),
            **machine("host/b", [card(5, 0.0)]),
        },
        excluded={"host/a": "in maintenance"},
    )
    p = a.place(Job(gpus=1, gpu_memory_gb=1))
    assert [a.fleet.machines[c.row] for c in p.candidates] == ["host/b"]
    assert [(a.fleet.machines[r.row], r.why) for r in p.rejected] == [("host/a", "in maintenance")]


def test_rejections_come_closest_first() -> None:
    a = assessed(
        {
            **machine("host/a", [card(1, 0.0)] * 4),
            **machine("host/b", [card(50, 0.0)] * 3 + [card(1, 0.0)]),
            **machine("host/c", [card(50, 0.0)] * 1),
            **machine("host/d", [card(50, 0.0)] * 8),
        },
        excluded={"host/d": "in maintenance"},
    )
    p = a.place(Job(gpus=4, gpu_memory_gb=40), limit=2)
    assert [a.fleet.machines[r.row] for r in p.rejected] == ["host/b", "host/c"]
    assert (p.n_candidates, p.n_rejected) == (0, 4)


def test_a_machine_whose_cards_send_no_memory_cannot_take_a_job() -> None:
    fleet = fleet_of({"host/a": {"cpu_utilization_ratio": 0.1}}, {"host/a/gpu0": {}})
    p = assess(fleet, [None]).place(Job())
    assert p.candidates == () and p.rejected[0].why == "no GPU memory value yet"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("gpus", {"gpus": 0}),
        ("gpus", {"gpus": 65}),
        ("gpu_memory_gb", {"gpu_memory_gb": float("nan")}),
        ("gpu_memory_gb", {"gpu_memory_gb": -1.0}),
        ("cores", {"cores": 10**9}),
        ("memory_gb", {"memory_gb": float("inf")}),
    ],
)
def test_a_job_out_of_bounds_is_refused_naming_the_field(field: str, kwargs: Any) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be between"):
        Job(**kwargs)


def test_a_large_fleet_is_assessed_and_placed_in_one_pass() -> None:
    """2,000 machines x 8 cards: every machine assessed, the ranking still exact."""
    rng = np.random.default_rng(4)
    readings: Readings = {}
    for m in range(2_000):
        free = rng.uniform(0, 79, 8)  # below 79.2 GiB: only one card of one machine fits
        if m == 1234:
            free[5] = 79.5
        readings.update(machine(f"c01/r{m // 40:02d}/s{m % 40:02d}", [card(f, 0.1) for f in free]))
    a = assessed(readings)
    assert len(a.fleet.machines) == 2_000 and len(a.fleet.cards) == 16_000
    p = a.place(Job(gpus=1, gpu_memory_gb=79.2), limit=5)
    assert p.n_candidates == 1 and a.fleet.machines[p.candidates[0].row] == "c01/r30/s34"
    assert [a.fleet.cards[k] for k in p.candidates[0].cards] == ["c01/r30/s34/gpu5"]
    assert p.n_rejected == 1_999 and len(p.rejected) == 5


# --------------------------------------------------------------------------- availability


@pytest.mark.parametrize(
    ("state", "reporting", "age_ms", "expected"),
    [
        ("ok", True, 0, None),
        ("warning", True, 0, None),  # its alerts do not keep it from being recommended
        ("maintenance", True, 0, "in maintenance"),
        ("failed", True, 0, "failed: fan-stopped"),
        ("unknown", False, 75_000, "offline: nothing received for 75 s"),
        (None, None, 59_000, None),  # no alert engine: the age decides
        (None, None, 61_000, "offline: nothing received for 61 s (the timeout is 60 s)"),
        (None, None, None, "offline: no value received yet"),
    ],
)
def test_exclusion(
    state: str | None, reporting: bool | None, age_ms: int | None, expected: str | None
) -> None:
    got = exclusion(state, reporting, age_ms=age_ms, stale_after_ms=60_000, reason="fan-stopped")
    assert got == expected


def test_exclusions_use_each_machines_own_clock() -> None:
    excluded = exclusions(
        ["c01/r01/s01", "host/a"],
        [10_000_000, 1_000],
        now_ms=lambda m: 1_000 + 5_000 if m.startswith("host/") else 10_000_000,
        stale_after_ms=lambda _m: 4_000,
    )
    assert excluded == [None, "offline: nothing received for 5 s (the timeout is 4 s)"]


def test_a_card_without_utilisation_is_not_counted_busy_and_the_why_says_so() -> None:
    a = assessed(machine("host/a", [{"gpu_memory_free_bytes": 40 * GIB}, card(40, 0.95)]))
    p = a.place(Job(gpus=1, gpu_memory_gb=10))
    assert [a.fleet.cards[k] for k in p.candidates[0].cards] == ["host/a/gpu0"]
    assert "utilisation of 1 card(s) unknown" in p.candidates[0].why
    assert np.isnan(p.candidates[0].cards_utilization)
