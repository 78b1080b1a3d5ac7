"""`rackwatch report`: a period's report from the store, archived and written where asked;
refusals that say what to fix; and made by the running server while it holds the store."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_query import served  # uvicorn in a thread, as in the query tests
from typer.testing import CliRunner, Result

from rackwatch import app
from rackwatch.api import ApiContext, create_app
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.model import SeriesRegistry
from rackwatch.readout import server_file
from rackwatch.settings import load_settings
from rackwatch.tokens import TokenStore

runner = CliRunner()
DAY = "2026-01-01"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "sim"
    room = ["--scenario", "small", "--hours", "2", "--seed", "3", "--start", f"{DAY}T10:00:00"]
    made = runner.invoke(cli_app(), ["simulate", *room, "--out", str(out)])
    assert made.exit_code == 0, made.output
    return out


def cli_app():  # imported late: the module under test
    from rackwatch.cli import cli

    return cli


@pytest.fixture
def data_dir(simulated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(simulated, copy)
    return copy


def report(data: Path, *args: str) -> Result:
    return runner.invoke(cli_app(), ["report", "--data-dir", str(data), *args])


def test_a_day_as_json_on_stdout_and_archived_in_every_format(data_dir: Path) -> None:
    done = report(data_dir, "--period", "day", "--date", DAY, "--format", "json", "--out", "-")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["name"] == "day-2026-01-01" and doc["n_machines"] > 0
    assert doc["cpu"]["busiest_server"]["entity"].startswith("c01/")
    assert "archived as" in done.stderr
    archived = sorted(p.name for p in (data_dir / "reports" / "day").iterdir())
    assert archived == ["day-2026-01-01.csv", "day-2026-01-01.html", "day-2026-01-01.json"]


def test_without_out_the_archived_path_is_printed(data_dir: Path, tmp_path: Path) -> None:
    done = report(data_dir, "--period", "month", "--date", "2026-01-15")
    assert done.exit_code == 0, done.output
    path = Path(done.stdout.strip())
    assert path == data_dir / "reports" / "month" / "month-2026-01-01.html"
    assert b"Monthly report: January 2026" in path.read_bytes()
    written = tmp_path / "week.csv"
    done = report(data_dir, "-p", "week", "--date", DAY, "-f", "csv", "-o", str(written))
    assert done.exit_code == 0, done.output
    assert written.read_text().startswith("section,time,entity,metric,statistic,value,unit")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--period", "year"], "'day', 'week', 'month'"),
        (["--period", "day", "--date", "01/01/2026"], "YYYY-MM-DD"),
        (["--period", "day", "--date", "2999-01-01"], "has not started"),
        (["--period", "day", "--format", "pdf"], "'html', 'json', 'csv'"),
    ],
)
def test_bad_options_say_what_to_fix(data_dir: Path, args: list[str], said: str) -> None:
    done = report(data_dir, *args)
    assert done.exit_code == 2
    assert said in " ".join(done.output.replace("│", " ").split())
    assert not (data_dir / "reports").exists()


def test_a_directory_without_a_store_is_refused(tmp_path: Path) -> None:
    done = report(tmp_path, "--period", "day")
    assert done.exit_code == 2 and "no store" in done.output


@contextlib.contextmanager
def running_server(data: Path) -> Iterator[str]:
    """What `rackwatch run` does for `report`: hold the store, serve the API with a reporter,
    record the server, and accept the data directory's control token."""
    settings = load_settings(data_dir=data)
    tokens = TokenStore(data / app.TOKENS_FILE)
    secret, _ = tokens.create("control", name="test")
    (data / "control-token.txt").write_text(secret + "\n")
    registry = SeriesRegistry()
    with contextlib.closing(app.open_store(settings, registry)) as store:
        ctx = ApiContext(
            store=store,
            registry=registry,
            live=LiveState(len(registry)),
            bus=MemoryBus(),
            tokens=tokens,
            reports=app.build_reporter(settings, store),
        )
        with served(create_app(ctx)) as url:
            server_file.record(data, url)
            try:
                yield url
            finally:
                server_file.discard(data)


def test_the_running_server_makes_it_while_it_holds_the_store(data_dir: Path) -> None:
    local = report(data_dir, "--period", "day", "--date", DAY, "-f", "json", "-o", "-")
    with running_server(data_dir) as url:
        remote = report(data_dir, "--period", "day", "--date", DAY, "-f", "json", "-o", "-")
        refused = report(data_dir, "-p", "day", "--date", DAY, "--token", "rw_nope", "-o", "-")
    assert remote.exit_code == 0, remote.output
    assert f"made by the running server at {url}" in remote.stderr
    here, there = json.loads(local.stdout), json.loads(remote.stdout)
    for doc in (here, there):
        del doc["generated_at"], doc["generated_at_ms"]
    assert there == here
    assert refused.exit_code == 2 and "control token" in refused.output
