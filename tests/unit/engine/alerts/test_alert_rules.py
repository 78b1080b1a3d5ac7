"""Rule evaluation: thresholds, hysteresis, for, rate, ratio, guard, absent; batch-size
independence; NaN and new series."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.alerts.rules import Guard, Rule, RuleEvaluator, RuleKind, Transition
from rackwatch.model import Batch, SeriesRegistry, Severity

W, C = Severity.WARNING, Severity.CRITICAL
S1, S2 = "c01/r01/s01", "c01/r01/s02"
CPU = "cpu_temperature_celsius"


def rows(registry: SeriesRegistry, *samples: tuple[float, str, str, float]) -> Batch:
    """Batch from (ts_s, entity, metric, value) rows; ts in seconds for readability."""
    ts = [int(t * 1000) for t, _, _, _ in samples]
    ids = [registry.intern(e, m) for _, e, m, _ in samples]
    return Batch.of(ts, ids, [v for _, _, _, v in samples])


def series(
    registry: SeriesRegistry, entity: str, metric: str, values: list[float], step_s: float = 5
) -> Batch:
    return rows(registry, *((i * step_s, entity, metric, v) for i, v in enumerate(values)))


def changes(transitions: list[Transition]) -> list[tuple[float, str, Severity | None]]:
    return [(tr.ts / 1000, tr.entity, tr.level) for tr in transitions]


def test_warning_then_critical_then_back_down() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, warning=75, critical=85)], reg)
    out = ev.evaluate(series(reg, S1, CPU, [70, 75, 80, 86, 84, 74]))
    assert changes(out) == [(5, S1, W), (15, S1, C), (20, S1, W), (25, S1, None)]
    fired, escalated, _, cleared = out
    assert (fired.previous, fired.value, fired.threshold) == (None, 75.0, 75.0)
    assert (escalated.previous, escalated.threshold) == (W, 85.0)
    assert (cleared.previous, cleared.threshold) == (W, 75.0)
    assert fired.message.endswith("CPU temperature 75.0 °C (WARNING at or above 75.0 °C)")
    assert "resolved, CPU temperature 74.0 °C" in cleared.message


def test_below_rule_like_inlet_too_cold() -> None:
    reg = SeriesRegistry()
    rule = Rule("cold", "inlet_temperature_celsius", op="<", warning=18, hysteresis=0.5)
    ev = RuleEvaluator([rule], reg)
    out = ev.evaluate(series(reg, S1, "inlet_temperature_celsius", [19, 17.9, 18.3, 18.6]))
    assert changes(out) == [(5, S1, W), (15, S1, None)]  # 18.3 is inside the hysteresis band


def test_hysteresis_fires_above_75_clears_below_72() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, op=">=", warning=75, hysteresis=3)], reg)
    values = [74, 76, 73, 75.5, 72.5, 72, 71.9, 74.9, 75.1]
    out = ev.evaluate(series(reg, S1, CPU, values))
    assert changes(out) == [(5, S1, W), (30, S1, None), (40, S1, W)]


def test_for_duration_must_hold_before_firing_and_a_break_restarts_it() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, warning=75, for_s=10)], reg)
    # above at 5 and 10, below at 15 (run broken), above from 20: fires at 30 (20 + 10 s).
    out = ev.evaluate(series(reg, S1, CPU, [70, 80, 80, 70, 80, 80, 80, 80]))
    assert changes(out) == [(30, S1, W)]


def test_for_duration_spans_batches() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, warning=75, for_s=10)], reg)
    assert ev.evaluate(rows(reg, (0, S1, CPU, 80))) == []
    assert ev.evaluate(rows(reg, (5, S1, CPU, 80))) == []
    assert changes(ev.evaluate(rows(reg, (10, S1, CPU, 80)))) == [(10, S1, W)]


def test_nan_readings_neither_fire_clear_nor_break_a_run() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, warning=75, for_s=10)], reg)
    out = ev.evaluate(series(reg, S1, CPU, [80, np.nan, 80, np.nan, np.nan, 70]))
    assert changes(out) == [(10, S1, W), (25, S1, None)]


def test_rate_per_minute_over_a_window() -> None:
    reg = SeriesRegistry()
    rule = Rule("rising", CPU, kind=RuleKind.RATE, op=">", warning=3, window_s=60)
    ev = RuleEvaluator([rule], reg)
    flat = [40.0] * 13  # 0..60 s
    climb = [40.0 + 0.25 * k for k in range(1, 25)]  # +3 °C/min from 65 s
    first = ev.evaluate(series(reg, S1, CPU, flat))
    assert first == []
    # The 60 s anchor of the sample at 65 s is the one at 5 s; + 0.25 °C per 5 s is exactly
    # 3 °C/min once the whole window climbs: not > 3. A steeper climb fires.
    later = [(65 + 5 * k, S1, CPU, v) for k, v in enumerate(climb)]
    assert ev.evaluate(rows(reg, *later)) == []
    steep = [(190 + 5 * k, S1, CPU, climb[-1] + 0.5 * (k + 1)) for k in range(14)]
    out = ev.evaluate(rows(reg, *steep))
    assert [tr.level for tr in out] == [W]
    assert out[0].value > 3 and out[0].rule.unit == "celsius/min"


def test_rate_needs_an_anchor_old_enough() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("r", CPU, kind=RuleKind.RATE, warning=1, window_s=60)], reg)
    assert ev.evaluate(series(reg, S1, CPU, [30, 40, 50, 60])) == []  # only 15 s of history


def test_ratio_of_two_series_of_the_same_entity() -> None:
    reg = SeriesRegistry()
    pdu, other = "c01/r01/pdu", "c01/r02/pdu"
    rule = Rule(
        "pdu",
        "pdu_power_watts",
        kind=RuleKind.RATIO,
        denominator="pdu_capacity_watts",
        warning=0.9,
        critical=0.98,
    )
    ev = RuleEvaluator([rule], reg)
    batch = rows(
        reg,
        (0, pdu, "pdu_capacity_watts", 2000),
        (0, other, "pdu_capacity_watts", 10_000),
        (0, pdu, "pdu_power_watts", 1700),
        (0, other, "pdu_power_watts", 1900),  # 0.19 of its own capacity
        (5, pdu, "pdu_power_watts", 1850),  # 0.925 against the capacity seen at 0
        (10, pdu, "pdu_capacity_watts", 1880),  # a cap fault lowers the capacity...
        (10, pdu, "pdu_power_watts", 1850),  # ...same power, now 0.984
    )
    out = ev.evaluate(batch)
    assert changes(out) == [(5, pdu, W), (10, pdu, C)]
    assert out[1].rule.signal == "pdu_power_watts/pdu_capacity_watts"
    # The capacity is carried to the next batch.
    assert changes(ev.evaluate(rows(reg, (15, pdu, "pdu_power_watts", 1000)))) == [(15, pdu, None)]


def test_ratio_without_denominator_yet_is_skipped() -> None:
    reg = SeriesRegistry()
    rule = Rule("pdu", "a", kind=RuleKind.RATIO, denominator="b", warning=0.5)
    ev = RuleEvaluator([rule], reg)
    assert ev.evaluate(rows(reg, (0, S1, "a", 100.0))) == []
    assert ev.evaluate(rows(reg, (5, S1, "b", 0.0), (5, S1, "a", 100.0))) == []  # / 0: skipped


def test_guard_fan_stopped_only_while_commanded_on() -> None:
    reg = SeriesRegistry()
    fan = "c01/r01/s01/fan1"
    rule = Rule("fan-stopped", "fan_rpm", op="<", critical=100, when=Guard.parse("fan_level > 0"))
    ev = RuleEvaluator([rule], reg)
    assert ev.evaluate(rows(reg, (0, fan, "fan_rpm", 0))) == []  # level never seen: skipped
    out = ev.evaluate(
        rows(
            reg,
            (5, fan, "fan_level", 2),
            (5, fan, "fan_rpm", 7000),
            (10, fan, "fan_level", 2),
            (10, fan, "fan_rpm", 0),  # stopped while commanded on
            (15, fan, "fan_level", 0),
            (15, fan, "fan_rpm", 0),  # commanded off: not a failure, clears
            (20, fan, "fan_rpm", 0),
        )
    )
    assert changes(out) == [(10, fan, C), (15, fan, None)]


def test_guard_parse_errors_say_how_to_write_it() -> None:
    with pytest.raises(ValueError, match="fan_level > 0"):
        Guard.parse("fan_level is on")


def test_absent_data_against_the_newest_timestamp_seen() -> None:
    reg = SeriesRegistry()
    rule = Rule("absent", "*", kind=RuleKind.ABSENT, warning=30, critical=60)
    ev = RuleEvaluator([rule], reg)
    assert ev.evaluate(rows(reg, (0, S1, CPU, 1), (0, S2, CPU, 1))) == []
    assert ev.evaluate(rows(reg, (25, S1, CPU, 1))) == []
    assert changes(ev.evaluate(rows(reg, (35, S1, "power_watts", 1)))) == [(35, S2, W)]
    assert changes(ev.evaluate(rows(reg, (60, S1, CPU, 1)))) == [(60, S2, C)]
    out = ev.evaluate(rows(reg, (65, S2, CPU, 1)))
    assert changes(out) == [(65, S2, None)]
    assert out[0].rule.unit == "s"


def test_absent_ages_each_entity_on_the_clock_of_its_own_source() -> None:
    """A twin a day ahead of the wall clock never makes a host look silent; a host that stops
    while another host of the same source goes on does."""
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("absent", "*", kind=RuleKind.ABSENT, warning=30)], reg)
    day = 86_400
    assert (
        ev.evaluate(rows(reg, (0, "host/a", "load1", 1), (0, "host/b", "load1", 1)), "agent") == []
    )
    assert ev.evaluate(rows(reg, (day, S1, CPU, 1)), "twin") == []  # the twin runs ahead
    assert (
        ev.evaluate(rows(reg, (20, "host/a", "load1", 1), (20, "host/b", "load1", 1)), "agent")
        == []
    )
    assert ev.evaluate(rows(reg, (day + 60, S1, CPU, 1)), "twin") == []
    # host/b stops; host/a's clock (its source's) moves on
    assert changes(ev.evaluate(rows(reg, (55, "host/a", "load1", 1)), "agent")) == [
        (55, "host/b", W)
    ]
    # the twin's own silent entity still ages on the twin's clock
    assert ev.evaluate(rows(reg, (day + 60, S2, CPU, 1)), "twin") == []
    assert changes(ev.evaluate(rows(reg, (day + 95, S1, CPU, 1)), "twin")) == [(day + 95, S2, W)]


def test_absent_never_reports_an_entity_never_seen() -> None:
    reg = SeriesRegistry()
    reg.intern(S2, CPU)  # registered (e.g. from the store) but silent since start
    ev = RuleEvaluator([Rule("absent", "*", kind=RuleKind.ABSENT, warning=30)], reg)
    assert ev.evaluate(rows(reg, (0, S1, CPU, 1))) == []
    assert ev.evaluate(rows(reg, (100, S1, CPU, 1))) == []


def test_entity_glob_selects_series_and_new_series_are_picked_up() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, entity="c01/r01/*", warning=75)], reg)
    out = ev.evaluate(rows(reg, (0, S1, CPU, 80), (0, "c01/r02/s01", CPU, 80)))
    assert changes(out) == [(0, S1, W)]
    out = ev.evaluate(rows(reg, (5, S2, CPU, 90)))  # a series registered after the start
    assert changes(out) == [(5, S2, W)]
    assert ev.levels("cpu") == {S1: W, S2: W}


def test_unsorted_rows_and_many_steps_give_the_same_answer_as_one_step_at_a_time() -> None:
    reg = SeriesRegistry()
    rules = [
        Rule("cpu", CPU, warning=60, critical=70, hysteresis=2, for_s=10),
        Rule("rate", CPU, kind=RuleKind.RATE, op=">", warning=4, window_s=30),
    ]
    rng = np.random.default_rng(3)
    n_steps, entities = 300, [f"c01/r01/s{i:02d}" for i in range(6)]
    ids = np.array([reg.intern(e, CPU) for e in entities], dtype=np.int32)
    values = 60 + np.cumsum(rng.normal(0, 1.5, (n_steps, len(ids))), axis=0)
    whole = Batch.from_grid(np.arange(n_steps) * 5000, ids, values)
    shuffled = whole.take(rng.permutation(len(whole)))
    together = RuleEvaluator(rules, reg).evaluate(shuffled)
    stepwise = RuleEvaluator(rules, reg)
    one_by_one = []
    for k in range(n_steps):
        one_by_one += stepwise.evaluate(whole.take(np.arange(k * 6, k * 6 + 6)))
    key = [(tr.ts, tr.rule.name, tr.entity, tr.level) for tr in together]
    assert len(key) > 10
    assert sorted(key, key=str) == sorted(
        [(tr.ts, tr.rule.name, tr.entity, tr.level) for tr in one_by_one], key=str
    )


def test_unknown_series_id_is_a_clear_error() -> None:
    reg = SeriesRegistry()
    ev = RuleEvaluator([Rule("cpu", CPU, warning=1)], reg)
    with pytest.raises(ValueError, match="registry"):
        ev.evaluate(Batch.of([0], [5], [1.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warning": None}, "warning or a critical"),
        ({"warning": 80, "critical": 70}, "critical .70. must be above warning"),
        ({"op": "=="}, "op '=='"),
        ({"kind": RuleKind.RATIO}, "denominator"),
        ({"metric": "cpu_*"}, "one name"),
        ({"name": "bad name"}, "name must be"),
        ({"hysteresis": -1}, "hysteresis"),
    ],
)
def test_bad_rules_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "r", "metric": CPU, "warning": 75, **kwargs}
    with pytest.raises(ValueError, match=message):
        Rule(**args)  # type: ignore[arg-type]


def test_duplicate_rule_names_are_refused() -> None:
    rule = Rule("cpu", CPU, warning=75)
    with pytest.raises(ValueError, match="unique"):
        RuleEvaluator([rule, rule], SeriesRegistry())
