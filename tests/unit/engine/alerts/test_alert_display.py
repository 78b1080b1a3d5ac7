"""Alert messages in the dashboard's units and words (issue 8, item 13): "32.3 °C", not
"32.3 celsius"; "disk failed", not "disk_ok = 0 boolean"; while `value` and `unit` stay raw."""

from __future__ import annotations

import math

import pytest

from rackwatch.engine.alerts import AlertBook, Rule, RuleEvaluator
from rackwatch.engine.alerts.display import describe, duration, label, show
from rackwatch.model import Batch, SeriesRegistry, Severity
from rackwatch.settings import AlertSettings, build_alert_rules

RULES = {rule.name: rule for rule in build_alert_rules(AlertSettings())}
W, C = Severity.WARNING, Severity.CRITICAL


@pytest.mark.parametrize(
    ("rule", "level", "value", "threshold", "expected"),
    [
        (
            "inlet-temperature-high",
            C,
            32.3,
            32.0,
            "c01/r01/s01: Inlet temperature 32.3 °C (CRITICAL above 32.0 °C)",
        ),
        ("disk-failed", C, 0.0, 0.5, "c01/r01/s01: disk failed (CRITICAL)"),
        ("disk-failed", None, 1.0, 0.5, "c01/r01/s01: resolved, disk OK"),
        ("fan-stopped", C, 0.0, 100.0, "c01/r01/s01: fan stopped, 0 rpm (CRITICAL below 100 rpm)"),
        ("fan-stopped", C, 60.0, 100.0, "c01/r01/s01: Fan speed 60 rpm (CRITICAL below 100 rpm)"),
        (
            "pdu-power-near-capacity",
            W,
            0.923,
            0.9,
            "c01/r01/s01: PDU power at 92.3 % of PDU capacity (WARNING at or above 90.0 %)",
        ),
        (
            "cpu-temperature-rising",
            W,
            3.54,
            3.0,
            "c01/r01/s01: CPU temperature rising 3.54 °C/min (WARNING above 3.00 °C/min)",
        ),
        (
            "telemetry-absent",
            W,
            65.0,
            60.0,
            "c01/r01/s01: no telemetry for 65 s (WARNING after 60 s)",
        ),
        (
            "memory-used",
            W,
            0.85,
            0.8,
            "c01/r01/s01: Memory used 85.0 % (WARNING at or above 80.0 %)",
        ),
    ],
)
def test_default_rules_speak_in_display_units(
    rule: str, level: Severity | None, value: float, threshold: float, expected: str
) -> None:
    message = RULES[rule].message("c01/r01/s01", level, value, threshold)
    assert message.endswith(expected), message
    assert not any(raw in message for raw in ("celsius", "boolean", "ratio", " = ", "disk_ok"))


def test_large_power_is_in_kilowatts_and_fan_levels_by_name() -> None:
    rule = Rule("room-power", "facility_power_watts", warning=50_000)
    message = rule.message("room", W, 61_250.0, 50_000)
    assert message.endswith("Facility power 61.25 kW (WARNING at or above 50.00 kW)")
    assert show("power_watts", 950) == "950 W" and show("power_watts", 2.5e6) == "2.50 MW"
    level_rule = Rule("fan-low", "fan_level", op="<", warning=1)
    assert level_rule.message("c01/r01/s01/fan1", W, 0.0, 1.0).endswith("fan level off (WARNING)")
    assert [show("fan_level", v) for v in (0, 1, 2, 3)] == ["off", "low", "medium", "high"]


def test_what_the_catalogue_does_not_name_still_reads_well() -> None:
    assert label("node_load_average") == "Node load average"
    assert label("gpu_temperature_celsius") == "GPU temperature"  # named in LABELS
    assert show("gpu_temperature_celsius", 81.26) == "81.3 °C"
    assert show("custom_thing", 1234.5) == "1,234" and show("custom_thing", 1.234) == "1.23"
    assert describe("fan_rpm", math.nan) == "Fan speed no reading"
    assert duration(720) == "12 min" and duration(12_600) == "3.5 h"


def test_an_alert_keeps_its_raw_value_and_unit_for_machines() -> None:
    reg = SeriesRegistry()
    sid = reg.intern("c01/r01/s01", "inlet_temperature_celsius")
    ev = RuleEvaluator([RULES["inlet-temperature-high"]], reg)
    book = AlertBook()
    ts = [i * 5000 for i in range(20)]
    [tr] = [t for t in ev.evaluate(Batch.of(ts, [sid] * 20, [32.3] * 20)) if t.level is C]
    change = book.apply(tr)
    assert change is not None
    event = change.event()
    assert (event.attributes["value"], event.attributes["unit"]) == (32.3, "celsius")
    assert "32.3 °C" in event.attributes["message"]
    assert change.alert.as_dict()["unit"] == "celsius"
