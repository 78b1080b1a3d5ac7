import re
from pathlib import Path

import pytest

from rackwatch.model.catalogue import METRICS, MetricKind, fan_level

DOC = Path(__file__).parents[3] / "docs" / "METRICS.md"


def test_metrics_doc_lists_exactly_the_catalogue() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|[^|]+\| ([^|]+) \| ([a-z]+) \|", DOC.read_text(), re.M)
    documented = {name: (unit.strip(), kind) for name, unit, kind in rows}
    assert documented == {m.name: (m.unit, m.kind.value) for m in METRICS.values()}


def test_metric_names_follow_prometheus_conventions() -> None:
    for spec in METRICS.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind is MetricKind.COUNTER), spec.name
        if spec.unit == "ratio":
            assert spec.name.endswith("_ratio"), spec.name


@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 1e308, float("nan"), float("inf"), 2.5, "HIGHEST", None, True]
)
def test_a_fan_level_is_one_rule_with_a_clear_error(value: object) -> None:
    with pytest.raises(ValueError, match=r"fan level must be 0\.\.3"):
        fan_level(value)
    assert [fan_level(v) for v in ("OFF", "low", 2, 3.0)] == [0, 1, 2, 3]
