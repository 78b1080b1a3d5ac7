"""`rackwatch devices` and `rackwatch run --mqtt` refuse bad input with one line, before any
connection (the broker itself: tests/integration/mqtt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli
from rackwatch.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mqtt", "http://127.0.0.1:1883"], "bad MQTT URL"),
        (["--mqtt", "mqtt://127.0.0.1:99999"], "bad MQTT URL"),
        (["--mqtt", "mqtt://127.0.0.1", "--prefix", "a/#"], "bad MQTT topic prefix"),
        (["--mqtt", "mqtt://127.0.0.1", "--scenario", "nope"], "unknown scenario"),
    ],
)
def test_devices_refuses_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["devices", *args], env={"COLUMNS": "200"})
    assert result.exit_code != 0
    text = result.output + (str(result.exception) if result.exception else "")
    assert message in text


def test_run_refuses_a_bad_mqtt_url_before_writing_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = runner.invoke(
        cli,
        [
            "run",
            "--no-twin",
            "--no-host",
            "--mqtt",
            "tcp://x",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
        ],
    )
    assert isinstance(result.exception, ConfigError)
    assert "bad MQTT URL 'tcp://x'" in str(result.exception)
    assert not data_dir.exists()


def test_devices_is_listed() -> None:
    result = runner.invoke(cli, ["--help"], env={"COLUMNS": "200"})
    assert "devices" in result.output
