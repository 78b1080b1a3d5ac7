"""The command line as a user runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rackwatch import app
from rackwatch.cli import cli
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.store.base import Query

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "simulate", "scenarios", "query"):
        assert command in result.output


def test_scenarios_lists_the_seed_protocols() -> None:
    result = runner.invoke(cli, ["scenarios"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in (
        "fan-fail",
        "sensor-drift",
        "crac-degraded",
        "burst-fan-degradation",
        "network-loss",
        "very-large",
    ):
        assert name in result.output


def test_simulate_prints_a_summary_and_query_reads_it_back(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = runner.invoke(
        cli,
        [
            "simulate",
            "--scenario",
            "small",
            "--hours",
            "1",
            "--seed",
            "2",
            "--start",
            "2026-01-01",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "samples" in result.output and "51,840" in result.output  # 72 series x 720 steps
    assert (out / app.STORE_FILE).exists()
    shown = runner.invoke(
        cli,
        [
            "query",
            "--data-dir",
            str(out),
            "--entity",
            "c01/r01/s01",
            "--metric",
            "cpu_temperature_celsius",
            "--since",
            "1h",
            "--step",
            "1h",
        ],
        env={"COLUMNS": "200"},
    )
    assert shown.exit_code == 0, shown.output
    assert "tier 1h" in shown.output and "cpu_temperature_celsius" in shown.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--out", "x"], "give a duration"),
        (["simulate", "--out", "x", "--hours", "1", "--scenario", "huge"], "unknown scenario"),
        (["simulate", "--out", "x", "--days", "-1"], "greater than or equal to 0"),
        (["query", "--data-dir", "nowhere"], "no store in nowhere"),
    ],
)
def test_bad_options_are_refused_with_a_message(
    args: list[str], message: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    if message:
        assert message in result.output
    assert not (tmp_path / "x").exists()


def test_bad_config_file_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[twin]\nspeed = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "rackwatch", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "twin.speed" in proc.stderr and "Traceback" not in proc.stderr


def test_run_refuses_a_scrape_url_it_cannot_scrape_before_writing_anything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    options = ["--no-twin", "--data-dir", str(data), "--port", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "rackwatch", "run", "--scrape", "ftp://[x]/metrics", *options],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2
    assert "error: scrape target ftp://[x]/metrics: not a URL" in proc.stderr  # [x] not markup
    assert "Traceback" not in proc.stderr
    assert not data.exists()


@pytest.mark.slow
def test_run_stops_cleanly_on_ctrl_c_with_everything_written(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    log = (tmp_path / "out.log").open("w")  # the process has its own copy
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rackwatch",
            "run",
            "--scenario",
            "small",
            "--speed",
            "600",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
        ],
        stdout=log,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    log.close()
    # From the moment it says it runs (a loaded machine may take seconds to import and start).
    deadline = time.monotonic() + 60
    while "Press Ctrl-C to stop." not in (tmp_path / "out.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.1)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    stdout = (tmp_path / "out.log").read_text()
    assert proc.returncode == 0, stderr
    assert "stopped:" in stdout
    written = int(stdout.rsplit("stopped:", 1)[1].split("samples")[0].replace(",", ""))
    assert written > 72 * 100  # 600x for ~3 s is several hundred 5 s steps
    settings = load_settings(data_dir=tmp_path)
    with contextlib.closing(app.open_store(settings, SeriesRegistry())) as store:
        assert len(store.query(Query(0, 2**62))) == written


def test_token_create_list_revoke(tmp_path: Path) -> None:
    created = runner.invoke(
        cli,
        ["token", "create", "--scope", "read", "--name", "grafana", "--data-dir", str(tmp_path)],
        env={"COLUMNS": "200"},
    )
    assert created.exit_code == 0, created.output
    secret = next(w for w in created.output.split() if w.startswith("rw_"))
    token_id = created.output.split("token ")[1].split()[0]
    listed = runner.invoke(
        cli, ["token", "list", "--data-dir", str(tmp_path)], env={"COLUMNS": "200"}
    )
    assert token_id in listed.output and "grafana" in listed.output
    assert secret not in listed.output and secret not in (tmp_path / "tokens.json").read_text()
    revoked = runner.invoke(cli, ["token", "revoke", token_id, "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0
    again = runner.invoke(cli, ["token", "revoke", token_id, "--data-dir", str(tmp_path)])
    assert again.exit_code == 2


def test_query_refuses_a_bad_duration(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    made = runner.invoke(
        cli, ["simulate", "--scenario", "small", "--hours", "0.1", "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    for option in ("--since", "--step"):
        result = runner.invoke(
            cli, ["query", "--data-dir", str(out), option, "soon"], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 2 and "is not a duration" in result.output, result.output


def test_help_imports_nothing_heavy() -> None:
    """`rackwatch --help` answers at once: the API, DuckDB and the twin load with the commands
    that use them."""
    heavy = ("fastapi", "duckdb", "pyarrow", "rackwatch.app", "rackwatch.api", "rackwatch.twin")
    code = f"import sys, rackwatch.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("command", [[], ["run"], ["simulate"], ["query"], ["token", "revoke"]])
def test_help_shows_no_type_column(command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for label in ("<bool>", "<str>", "<float>", "<int>", "<path>"):
        assert label not in result.output, (command, label)


def test_run_on_a_port_in_use_refuses_before_writing_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "rackwatch", "run", "--port", str(port), "--data-dir", "d"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "200"},
        )
    assert proc.returncode == 2
    assert "cannot serve on 127.0.0.1" in proc.stderr and "--port" in proc.stderr
    assert not (tmp_path / "d").exists()  # no directory, no token, no store


def test_run_on_a_nats_bus_that_does_not_answer_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    pytest.importorskip("nats", reason="nats-py is not installed (the `nats` extra)")
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"nats://127.0.0.1:{port}"
    options = ["--no-twin", "--no-host", "--port", "0", "--data-dir", "d"]
    proc = subprocess.run(
        [sys.executable, "-m", "rackwatch", "run", "--bus", url, *options],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach NATS at {url}" in proc.stderr
    assert "start nats-server -js or use --bus memory" in proc.stderr
    assert "Traceback" not in proc.stderr and "stopped:" not in proc.stdout


def test_run_refuses_a_bus_url_that_is_not_memory_or_nats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rackwatch.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["run", "--bus", "kafka://127.0.0.1:9092", "--data-dir", "d"])
    # The settings refuse it (main() prints it as one `error:` line, exit 2).
    assert isinstance(result.exception, ConfigError), result.output
    assert "bus url 'kafka://127.0.0.1:9092': use memory or nats://HOST:PORT" in str(
        result.exception
    )
    assert not (tmp_path / "d").exists()


def test_the_live_panel_shows_no_nan_before_data_and_counts_alerts(tmp_path: Path) -> None:
    from rich.console import Console

    from rackwatch.cli import _render

    settings = load_settings(data_dir=tmp_path, twin={"scenario": "small"})
    services = app.build_services(settings, start_ms=1_767_225_600_000)
    try:
        out = Console(record=True, width=120)
        out.print(_render(services))
        text = out.export_text()
    finally:
        services.close()
    assert "nan" not in text.lower()
    assert "active alerts" in text and "starting" in text
