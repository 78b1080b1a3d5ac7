"""`rackwatch worker` refuses a layout that would publish or alert twice, before connecting."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from rackwatch.bus.spaced import Partition
from rackwatch.cli import cli
from rackwatch.errors import ConfigError
from rackwatch.settings import Settings
from rackwatch.worker import Role, run_worker


def test_a_second_twin_is_refused_with_the_command_to_run() -> None:
    # Nothing listens on port 1: the refusal comes before any connection is tried.
    settings = Settings.model_validate({"bus": {"url": "nats://127.0.0.1:1"}})
    with pytest.raises(ConfigError, match="run it once, with --partition 0/2"):
        asyncio.run(run_worker(settings, Role.TWIN, Partition(1, 2), asyncio.Event()))


def test_the_cli_says_so_and_exits_2() -> None:
    result = CliRunner().invoke(
        cli,
        ["worker", "--role", "twin", "--partition", "1/3", "--bus", "nats://127.0.0.1:1"],
    )
    assert result.exit_code == 2, result.output
    assert "the twin is one process for the whole room" in result.output
