"""`rackwatch mcp` as the command line sees it: registered, and a token the data directory does
not know refused before anything is served."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from rackwatch.cli_mcp import mcp
from rackwatch.errors import ConfigError
from rackwatch.tokens import TokenStore

runner = CliRunner()


def test_the_command_is_registered_with_its_options() -> None:
    from rackwatch.cli import cli

    result = runner.invoke(cli, ["mcp", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--token", "--data-dir", "RACKWATCH_TOKEN"):
        assert option in result.output


def test_a_token_the_data_directory_does_not_know_is_refused(tmp_path: Path) -> None:
    TokenStore(tmp_path / "tokens.json").create("read", name="someone")
    app = typer.Typer()
    app.command()(mcp)
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "--token", "rw_not-a-token"])
    assert isinstance(result.exception, ConfigError)
    assert "the token is not one of" in str(result.exception)
    assert result.stdout == ""  # stdout belongs to the protocol


def test_an_ingest_token_is_refused_it_reads_nothing(tmp_path: Path) -> None:
    secret, info = TokenStore(tmp_path / "tokens.json").create("ingest", name="agent")
    app = typer.Typer()
    app.command()(mcp)
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "--token", secret])
    assert isinstance(result.exception, ConfigError)
    assert f"token {info.id} has the 'ingest' scope, which reads nothing" in str(result.exception)
