"""`rackwatch evaluate`: the quick grid's JSON (stdout holds only it), the tables, and bad
options refused with exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.twin import FAULTS

runner = CliRunner()
KEYS = (
    "recall",
    "precision",
    "f1",
    "false_alarms_per_server_day",
    "detection_latency_s",
    "diagnosis_accuracy",
)


def test_quick_json_has_overall_and_one_object_per_fault_kind() -> None:
    done = runner.invoke(cli, ["evaluate", "--quick", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    kinds = [k for k in data if k in FAULTS]
    assert {"fan_off", "sensor_null", "disk_failure", "load_burst"} <= set(kinds)
    for name in ("overall", *kinds):
        assert all(key in data[name] for key in KEYS), name
    overall = data["overall"]
    assert {"sudden", "gradual", "kpis", "targets", "time_to_failure"} <= set(overall)
    assert {"anomalies_per_server_day", "false_positive_rate", "false_negative_rate"} <= set(
        overall["kpis"]
    )
    assert overall["n_faults"] >= 2 and data["load_burst"]["recall"] is None
    grid = data["grid"]
    assert grid["quick"] is True and grid["seeds"] == [2000] and grid["n_runs"] == 6
    assert grid["wall_s"] > 0 and len(grid["runs"]) == 6


def test_the_table_marks_the_targets() -> None:
    done = runner.invoke(
        cli,
        ["evaluate", "--quick", "--only", "disk_failure", "--jobs", "1", "--first-seed", "5"],
        env={"COLUMNS": "200"},
    )
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "disk_failure" in out and "overall" in out and "Targets" in out
    assert "recall, sudden faults" in out and "met" in out
    assert "1 runs, seeds 5" in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--only", "fan_of"], "unknown fault kind fan_of"),
        (["--only", ","], "unknown fault kind"),
        (["--seeds", "0"], "--seeds"),
        (["--jobs", "0"], "--jobs"),
        (["--seeds", "many"], "--seeds"),
        (["--first-seed", "-1"], "--first-seed"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(args: list[str], said: str) -> None:
    done = runner.invoke(cli, ["evaluate", "--quick", *args])
    assert done.exit_code == 2
    assert said in done.output
