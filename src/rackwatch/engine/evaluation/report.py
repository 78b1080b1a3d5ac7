"""`rackwatch evaluate`'s output: Rich tables for people, one JSON object for machines.

The table has a row per fault kind, then the sudden and gradual faults together and the
overall figures; a figure that has a target is green when it meets it and red when not. A
second table lists issue 10's targets, met or not; then seed 000's KPIs, the time-to-failure
figures and what the grid cost.

>>> as_json({"a": float("nan"), "b": [1.0, float("inf")]})
'{\\n  "a": null,\\n  "b": [\\n    1.0,\\n    null\\n  ]\\n}'
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rackwatch.engine.evaluation.suite import Evaluation


def _clean(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(_clean(data), indent=2, allow_nan=False)


def percent(value: float | None) -> str:
    """
    >>> percent(0.953), percent(None)
    ('95.3 %', '—')
    """
    return "—" if value is None else f"{100.0 * value:.1f} %"


def seconds(value: float | None) -> str:
    """
    >>> seconds(42.0), seconds(5400.0), seconds(None)
    ('42 s', '1.5 h', '—')
    """
    if value is None:
        return "—"
    if abs(value) >= 3600.0:
        return f"{value / 3600.0:.1f} h"
    if abs(value) >= 600.0:
        return f"{value / 60.0:.0f} min"
    return f"{value:.0f} s"


def number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _marked(text: str, is_met: bool | None) -> Text:
    """Green when it meets its target, red when not, plain when it has none."""
    if is_met is None:
        return Text(text)
    return Text(text, style="green" if is_met else "red")


def _short_percent(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * value:.1f}%"


def _parts(f: dict[str, Any]) -> str:
    """Nature, scope and cause right, in percent: `100/100/80`."""
    parts = [f.get(f"diagnosis_{p}") for p in ("nature", "scope", "cause")]
    if all(p is None for p in parts):
        return "—"
    return "/".join("—" if p is None else f"{100.0 * p:.0f}" for p in parts)


def _row(
    name: str, f: dict[str, Any], targets: dict[str, bool | None], *, only_faults: bool = False
) -> list[RenderableType]:
    """One table row; `only_faults` leaves blank what a group of faults has no figure for."""
    blank = Text("")
    return [
        Text(name),
        Text(str(f.get("class", ""))),
        Text(str(f.get("n_faults", 0))),
        _marked(_short_percent(f.get("recall")), targets.get("recall")),
        blank if only_faults else Text(_short_percent(f.get("precision"))),
        blank if only_faults else Text(number(f.get("f1"))),
        blank
        if only_faults
        else _marked(
            number(f.get("false_alarms_per_server_day")), targets.get("false_alarms_per_server_day")
        ),
        _marked(seconds(f.get("detection_latency_s")), targets.get("detection_latency_s")),
        Text(seconds(f.get("detection_latency_p95_s"))),
        blank
        if only_faults
        else _marked(
            _short_percent(f.get("diagnosis_accuracy")), targets.get("diagnosis_accuracy")
        ),
        blank if only_faults else Text(_parts(f)),
    ]


COLUMNS = (
    ("fault kind", "left"),
    ("class", "left"),
    ("n", "right"),
    ("recall", "right"),
    ("prec.", "right"),
    ("F1", "right"),
    ("FA/day", "right"),
    ("latency", "right"),
    ("p95", "right"),
    ("diag.", "right"),
    ("n/s/c", "right"),
)


def kinds_table(evaluation: Evaluation) -> Table:
    table = Table(
        title="rackwatch evaluate: per fault kind and overall",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    for name, justify in COLUMNS:
        table.add_column(name, justify="left" if justify == "left" else "right")
    for kind, figures in evaluation.per_kind().items():
        table.add_row(*_row(kind, figures, figures["targets"]))
    overall = evaluation.overall()
    met = {t["key"]: t["met"] for t in overall["targets"]}
    table.add_section()
    sudden = {"recall": met["recall"], "detection_latency_s": met["detection_latency_s"]}
    table.add_row(*_row("sudden faults", overall["sudden"], sudden, only_faults=True))
    table.add_row(*_row("gradual faults", overall["gradual"], {}, only_faults=True))
    overall_met = {
        "false_alarms_per_server_day": met["false_alarms_per_server_day"],
        "diagnosis_accuracy": met["diagnosis_accuracy"],
    }
    table.add_row(*_row("overall", overall, overall_met))
    table.caption = (
        "n: faults; prec.: detections explained by a fault; FA/day: false alarms per "
        "server-day (overall: fault-free runs); latency: first detection minus the fault's "
        "start, median and p95; diag.: nature, scope and cause all right, n/s/c: each alone "
        "(%). Green: meets its target, red: not."
    )
    return table


def targets_table(overall: dict[str, Any]) -> Table:
    table = Table(title="Targets (issue 10)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("wanted", justify="right")
    table.add_column("")
    for t in overall["targets"]:
        key, value = t["key"], t["value"]
        if key == "detection_latency_s":
            shown, wanted = seconds(value), f"≤ {t['threshold']:.0f} s"
        elif key == "false_alarms_per_server_day":
            shown, wanted = number(value), f"≤ {t['threshold']:g}"
        else:
            shown, wanted = percent(value), f"≥ {100 * t['threshold']:.0f} %"
        verdict = {True: "met", False: "not met", None: "no data"}[t["met"]]
        table.add_row(t["name"], shown, wanted, _marked(verdict, t["met"]))
    return table


def _kpi_lines(evaluation: Evaluation, overall: dict[str, Any]) -> list[str]:
    k = overall["kpis"]
    ttf = overall["time_to_failure"]
    lines = [
        "Seed 000's KPIs: "
        f"anomalies {number(k['anomalies_per_server_day'], 1)} per server-day "
        f"({number(k['anomalies_per_server_day_fault_free'], 1)} on fault-free runs); "
        f"false positives {percent(k['false_positive_rate'])}; "
        f"false negatives {percent(k['false_negative_rate'])}; "
        f"time to remediation {seconds(k['time_to_remediation_s'])} "
        f"(p95 {seconds(k['time_to_remediation_p95_s'])}, {k['n_remediated']} fan stops)",
    ]
    if ttf.get("n_runs"):
        at = ttf["at_lead"]
        errors = ", ".join(
            f"{lead} ahead {seconds(v['median_error_s'])} (coverage {percent(v['coverage'])})"
            for lead, v in at.items()
        )
        lines.append(
            f"Time to failure ({ttf['n_runs']} wear runs): predicted >= 1 h ahead in "
            f"{percent(ttf['predicted_1h_ahead'])}; lead {ttf['lead_h_min']:.1f} / "
            f"{ttf['lead_h_median']:.1f} / {ttf['lead_h_max']:.1f} h (min / median / max); "
            f"median error {errors}; {ttf['n_false_fans']} healthy fans predicted"
        )
    causes = overall["false_alarm_causes"]
    if causes:
        shown = ", ".join(f"{cause} {n}" for cause, n in causes.items())
        lines.append(f"False alarms by cause (all runs): {escape(shown)}")
    grid = evaluation.grid()
    for run in grid["failed"]:
        lines.append(f"[red]run {escape(run['name'])} failed[/]: {escape(run['error'])}")
    n_failed = f" ({grid['n_failed']} failed)" if grid["n_failed"] else ""
    lines.append(
        f"{grid['n_runs']} runs{n_failed}, seeds {', '.join(map(str, grid['seeds']))}, "
        f"{grid['simulated_hours']:.0f} simulated hours, {overall['server_days']:.1f} server-days "
        f"after warm-up; wall {grid['wall_s']:.0f} s with {grid['jobs']} jobs "
        f"({grid['cpu_s']:.0f} s CPU in the runs)"
    )
    return lines


def render(evaluation: Evaluation) -> Group:
    """Everything `rackwatch evaluate` prints without `--json`."""
    overall = evaluation.overall()
    return Group(
        kinds_table(evaluation),
        targets_table(overall),
        *(Text.from_markup(line) for line in _kpi_lines(evaluation, overall)),
    )
