"""`rackwatch pdu read` against the real SNMP agent: the table, the JSON, and the errors
(exit 2 for bad arguments or profile, 1 for a PDU that does not answer)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rackwatch.cli import cli

from .conftest import Agent

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_table_lists_every_outlet_and_the_total(agent: Agent) -> None:
    result = runner.invoke(
        cli, ["pdu", "read", agent.address, "--community", "apc-rpdu2", "--profile", "apc-rpdu2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    gpu = next(line for line in lines if "gpu1" in line)
    assert [cell.strip() for cell in gpu.split("│")[1:-1]] == ["4", "gpu1", "on", "480", "2.2", ""]
    off = next(line for line in lines if "off-box" in line)
    assert "off" in off.split("│")[3]
    assert "total 990 W" in result.output


def test_json_for_machines(agent: Agent) -> None:
    result = runner.invoke(
        cli,
        [
            "pdu",
            "read",
            agent.address,
            "--community",
            "raritan-px",
            "--profile",
            "raritan-px",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["total_watts"] == 612.0
    assert document["outlets"][2] == {
        "number": 3,
        "name": "node3",
        "state": "off",
        "watts": 0.0,
        "amperes": 0.0,
        "problems": [],
    }


def test_generic_profile_with_root_oid_and_outlets_over_v1(agent: Agent) -> None:
    result = runner.invoke(
        cli,
        [
            "pdu",
            "read",
            agent.address,
            "--community",
            "generic",
            "--profile",
            "generic",
            "--version",
            "1",
            "--outlets",
            "4",
            "--root-oid",
            "1.3.6.1.4.1.99999.1.1",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [o["watts"] for o in document["outlets"]] == [100.0, 200.0, 300.0, 400.0]
    assert (document["total_watts"], document["total_is_sum"]) == (1000.0, True)


def test_bad_values_are_shown_per_outlet(agent: Agent) -> None:
    result = runner.invoke(
        cli,
        [
            "pdu",
            "read",
            agent.address,
            "--community",
            "broken",
            "--profile",
            "apc-rpdu2",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["outlets"][2]["problems"] == ["power: not a number: 'n/a'"]
    assert document["total_watts"] is None


def test_unreachable_pdu_exits_1_saying_what_to_check(agent: Agent) -> None:
    result = runner.invoke(
        cli,
        [
            "pdu",
            "read",
            agent.address,
            "--community",
            "secret-wrong",
            "--profile",
            "apc-rpdu2",
            "--timeout",
            "0.5",
            "--retries",
            "0",
        ],
    )
    assert result.exit_code == 1
    assert "did not answer within 0.5 s" in result.output
    assert "community" in result.output and "profile apc-rpdu2" in result.output
    assert "secret-wrong" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["10.0.0.1:99999", "--profile", "apc-rpdu2"], "not HOST[:PORT]"),
        (["10.0.0.1", "--profile", "no-such-vendor"], "no PDU profile named 'no-such-vendor'"),
        (["10.0.0.1", "--profile", "generic"], "give root_oid (--root-oid)"),
        (["10.0.0.1", "--profile", "apc-rpdu2", "--version", "4"], "must be 1, 2c or 3"),
        (["10.0.0.1", "--profile", "apc-rpdu2", "--format", "xml"], "xml"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_error(args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["pdu", "read", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()), result.output


def test_v3_user_with_authentication_and_a_context(agent: Agent) -> None:
    result = runner.invoke(
        cli,
        [
            "pdu",
            "read",
            agent.address,
            "--profile",
            "apc-rpdu2",
            "--version",
            "3",
            "--user",
            "rackwatch",
            "--auth-protocol",
            "sha",
            "--context",
            "apc-rpdu2",
            "-f",
            "json",
        ],
        env={"RACKWATCH_PDU_AUTH_KEY": "rackwatch-auth-key"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total_watts"] == 990.0
