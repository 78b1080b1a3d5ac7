"""How alert messages show a value: in the dashboard's units and words. Pure.

An alert keeps its raw `value` and `unit` (base units: celsius, watts, ratio 0..1, boolean)
for machines; its `message` is for people and reads like the dashboard it sits on
(src/rackwatch/web/static/js/format.js): °C with one decimal, W (kW and MW where large), %,
rpm, fan levels by name (off, low, medium, high) and states in words ("disk failed",
"fan stopped"). Each metric is shown by a catalogue entry (`LABELS`, `PHRASES`) or, failing
that, by its unit suffix (`_celsius`, `_watts`, `_ratio` ...), never by a branch per metric.

>>> show("cpu_temperature_celsius", 32.34), show("power_watts", 12_400.0), show("power_watts", 950)
('32.3 °C', '12.40 kW', '950 W')
>>> show("cpu_utilization_ratio", 0.923), show("fan_rpm", 7_250.0), show("fan_level", 3.0)
('92.3 %', '7,250 rpm', 'high')
>>> describe("disk_ok", 0.0), describe("fan_rpm", 0.0), describe("inlet_temperature_celsius", 32.3)
('disk failed', 'fan stopped, 0 rpm', 'Inlet temperature 32.3 °C')
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rackwatch.model import METRICS, MetricKind
from rackwatch.model.catalogue import FAN_LEVELS

NO_READING = "no reading"
"""A NaN value: the sensor answered nothing."""

LABELS: dict[str, str] = {
    "cpu_temperature_celsius": "CPU temperature",
    "inlet_temperature_celsius": "Inlet temperature",
    "chassis_temperature_celsius": "Chassis temperature",
    "power_watts": "Power",
    "airflow_cfm": "Airflow",
    "cpu_utilization_ratio": "CPU utilisation",
    "disk_ok": "Disk",
    "fan_level": "Fan level",
    "fan_rpm": "Fan speed",
    "fan_power_watts": "Fan power",
    "pdu_power_watts": "PDU power",
    "pdu_capacity_watts": "PDU capacity",
    "crac_supply_temperature_celsius": "CRAC supply",
    "crac_power_watts": "Cooling power",
    "it_power_watts": "IT power",
    "facility_power_watts": "Facility power",
    "pue_ratio": "PUE",
    "memory_utilization_ratio": "Memory used",
    "swap_utilization_ratio": "Swap used",
    "disk_utilization_ratio": "Disk used",
    "disk_free_bytes": "Disk free",
    "gpu_utilization_ratio": "GPU utilisation",
    "gpu_memory_utilization_ratio": "GPU memory used",
    "gpu_temperature_celsius": "GPU temperature",
    "gpu_power_watts": "GPU power",
    "health_score": "Health",
    "anomaly_score": "Anomaly score",
}
"""The dashboard's labels (format.js LABELS); other metrics are named from their name."""

_UNIT_SUFFIXES = ("_celsius", "_watts", "_ratio", "_rpm", "_cfm", "_bytes", "_seconds", "_total")


def label(metric: str) -> str:
    """What people call the metric: `CPU temperature`; `Memory used` for
    memory_utilization_ratio."""
    found = LABELS.get(metric)
    if found is not None:
        return found
    name = metric
    for suffix in _UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name.removesuffix(suffix)
            break
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _grouped(value: float) -> str:
    return f"{value:,.0f}"


def _watts(value: float) -> str:
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:,.2f} MW"
    if size >= 1e3:
        return f"{value / 1e3:,.2f} kW"
    return f"{value:.1f} W" if size < 10 else f"{_grouped(value)} W"


def _bytes(value: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while abs(value) >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{_grouped(value)} {units[i]}" if i == 0 else f"{value:.1f} {units[i]}"


def _level_name(value: float) -> str:
    return FAN_LEVELS.get(round(value), f"{value:g}")


def _plain(value: float) -> str:
    return _grouped(value) if abs(value) >= 100 else f"{value:.2f}"


_BY_METRIC: dict[str, Callable[[float], str]] = {
    "fan_level": _level_name,
    "disk_ok": lambda v: "OK" if v >= 0.5 else "failed",
    "pue_ratio": lambda v: f"{v:.2f}",
    "health_score": lambda v: f"{v:.0f}/100",
    "anomaly_score": lambda v: f"{v:.2f}",
}
"""Metrics shown their own way (as format.js formatValue does)."""

_BY_SUFFIX: tuple[tuple[str, Callable[[float], str]], ...] = (
    ("_ratio", lambda v: f"{v * 100:.1f} %"),
    ("_celsius", lambda v: f"{v:.1f} °C"),
    ("_watts", _watts),
    ("_cfm", lambda v: f"{v:.1f} CFM"),
    ("_rpm", lambda v: f"{_grouped(v)} rpm"),
    ("_bytes", _bytes),
    ("_seconds", lambda v: duration(v)),
)


def show(metric: str, value: float) -> str:
    """The value as the dashboard shows it, unit included ("no reading" for NaN)."""
    if not math.isfinite(value):
        return NO_READING
    found = _BY_METRIC.get(metric)
    if found is not None:
        return found(value)
    for suffix, fmt in _BY_SUFFIX:
        if metric.endswith(suffix):
            return fmt(value)
    spec = METRICS.get(metric)
    unit = "" if spec is None or spec.unit in ("", "ratio", "boolean", "level") else spec.unit
    return f"{_plain(value)} {unit}".rstrip()


PHRASES: dict[str, Callable[[float], str | None]] = {
    "disk_ok": lambda v: "disk OK" if v >= 0.5 else "disk failed",
    "fan_level": lambda v: f"fan level {_level_name(v)}",
    "fan_rpm": lambda v: f"fan stopped, {show('fan_rpm', v)}" if v < 1 else None,
}
"""Values said in words rather than as a number; None: say it the usual way."""


def describe(metric: str, value: float) -> str:
    """The metric and its value in words: `CPU temperature 76.0 °C`, `disk failed`."""
    phrase = PHRASES.get(metric)
    said = phrase(value) if phrase is not None and math.isfinite(value) else None
    return said if said is not None else f"{label(metric)} {show(metric, value)}"


def is_state(metric: str) -> bool:
    """A metric whose values are states (disk OK/failed, fan level): thresholds between
    them (0.5) mean nothing to people, so messages leave them out."""
    spec = METRICS.get(metric)
    return spec is not None and spec.kind is MetricKind.STATE


def duration(seconds: float) -> str:
    """Seconds as people read them: `65 s`, `12 min`, `3.5 h`.

    >>> duration(65), duration(720), duration(12_600)
    ('65 s', '12 min', '3.5 h')
    """
    if not math.isfinite(seconds):
        return NO_READING
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def rate(metric: str, per_minute: float) -> str:
    """A change per minute in the metric's display unit, without sign: `3.50 °C/min`.

    >>> rate("cpu_temperature_celsius", -3.5), rate("power_watts", 120.0)
    ('3.50 °C/min', '120.00 W/min')
    """
    if not math.isfinite(per_minute):
        return NO_READING
    size = abs(per_minute)
    if metric.endswith("_ratio") and metric != "pue_ratio":
        return f"{size * 100:.2f} %/min"
    unit = {"_celsius": "°C", "_watts": "W", "_rpm": "rpm", "_cfm": "CFM"}
    for suffix, symbol in unit.items():
        if metric.endswith(suffix):
            return f"{size:.2f} {symbol}/min"
    spec = METRICS.get(metric)
    base = "" if spec is None or spec.unit in ("", "ratio", "boolean", "level") else spec.unit
    return f"{size:.2f} {base}/min".replace(" /min", "/min")


OP_WORDS = {">=": "at or above", ">": "above", "<=": "at or below", "<": "below"}
