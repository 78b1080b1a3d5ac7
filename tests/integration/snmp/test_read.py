"""Each shipped profile read from a real SNMP agent (snmpsim serving the project's recordings):
values, scales, names, states and totals; v1 GET against v2c GETBULK; the failure cases."""

from __future__ import annotations

import asyncio

import pytest

from rackwatch.sources.snmp.client import SnmpClient, SnmpError, SnmpTarget, SnmpTimeout
from rackwatch.sources.snmp.profiles import Profile, load_profile
from rackwatch.sources.snmp.reader import PduReading, read_pdu

from .conftest import V3_PRIV_KEY, Agent

pytestmark = pytest.mark.integration

GENERIC_ROOT = "1.3.6.1.4.1.99999.1.1"


def read(
    target: SnmpTarget, profile: Profile, outlet_count: int | None = None
) -> tuple[PduReading, int]:
    """The reading and the number of SNMP requests it took."""

    async def main() -> tuple[PduReading, int]:
        async with SnmpClient() as client:
            reading = await read_pdu(client, target, profile, outlet_count)
            return reading, client.n_requests

    return asyncio.run(main())


def rows(
    reading: PduReading,
) -> list[tuple[int, str | None, bool | None, float | None, float | None]]:
    return [(o.number, o.label, o.is_on, o.watts, o.amperes) for o in reading.outlets]


def test_apc_rpdu2_outlets_scaled_and_named(agent: Agent) -> None:
    reading, _ = read(agent.target("apc-rpdu2"), load_profile("apc-rpdu2"))
    assert rows(reading) == [
        (1, "web1-psu1", True, 120.0, 0.6),  # tenths of amperes
        (2, "web1-psu2", True, 135.0, 0.7),
        (3, "spare", True, 0.0, 0.0),
        (4, "gpu1", True, 480.0, 2.2),
        (5, "db1", True, 250.0, 1.1),
        (6, "off-box", False, 0.0, 0.0),  # rPDU2OutletSwitchedStatusState off(1)
    ]
    # rPDU2DeviceStatusPower is in hundredths of kW: 99 -> 990 W, the PDU's own measurement
    assert (reading.total_watts, reading.total_is_sum, reading.n_bad) == (990.0, False, 0)


def test_raritan_px_outlets_and_inlet_power(agent: Agent) -> None:
    reading, _ = read(agent.target("raritan-px"), load_profile("raritan-px"))
    assert rows(reading) == [
        (1, "node1", True, 200.0, 0.9),
        (2, "node2", True, 310.0, 1.4),
        (3, "node3", False, 0.0, 0.0),  # outletSwitchingState off(8)
        (4, "node4", True, 95.0, 0.4),
    ]
    assert (reading.total_watts, reading.total_is_sum) == (612.0, False)


def test_generic_root_oid_and_total_from_the_outlets(agent: Agent) -> None:
    reading, _ = read(agent.target("generic"), load_profile("generic").resolve(GENERIC_ROOT))
    assert [(o.number, o.watts) for o in reading.outlets] == [(n, 100.0 * n) for n in range(1, 9)]
    assert all(o.label is None and o.is_on is None for o in reading.outlets)
    assert (reading.total_watts, reading.total_is_sum) == (3600.0, True)


def test_outlet_count_limits_the_outlets(agent: Agent) -> None:
    reading, _ = read(agent.target("generic"), load_profile("generic").resolve(GENERIC_ROOT), 3)
    assert [o.number for o in reading.outlets] == [1, 2, 3]
    assert reading.total_watts == 600.0


def test_v1_get_reads_what_the_v2c_walk_reads(agent: Agent) -> None:
    profile = load_profile("apc-rpdu2")
    walked, n_walk = read(agent.target("apc-rpdu2", "2c"), profile)
    got, n_get = read(agent.target("apc-rpdu2", "1"), profile, outlet_count=6)
    assert rows(got) == rows(walked)
    assert got.total_watts == walked.total_watts == 990.0
    # GETBULK: a request per column and one for the total; v1 GET: every OID at once
    assert n_walk == 5
    assert n_get == 2


def test_v1_get_of_a_missing_oid_keeps_the_others(agent: Agent) -> None:
    # v1 fails a whole GET on one missing OID (noSuchName): the client asks again without it
    reading, _ = read(agent.target("broken", "1"), load_profile("apc-rpdu2"), outlet_count=5)
    assert reading.outlets[1].watts is None
    assert reading.outlets[1].problems == ("power: no such object",)
    assert [o.amperes for o in reading.outlets] == [0.5] * 5


def test_v1_without_an_outlet_count_walks_with_getnext(agent: Agent) -> None:
    reading, n = read(agent.target("generic", "1"), load_profile("generic").resolve(GENERIC_ROOT))
    assert reading.total_watts == 3600.0
    assert n >= 8  # one GETNEXT per row


def test_broken_values_are_left_out_named_and_counted(agent: Agent) -> None:
    reading, _ = read(agent.target("broken"), load_profile("apc-rpdu2"))
    by_number = {o.number: o for o in reading.outlets}
    assert by_number[1].watts == 100.0 and by_number[1].problems == ()
    assert by_number[2].problems == ("power: no such object",)
    assert by_number[3].problems == ("power: not a number: 'n/a'",)
    assert by_number[4].watts is None
    assert by_number[4].problems[0].startswith("power: out of range: 999999")
    assert by_number[5].is_on is None and by_number[5].watts == 100.0
    assert by_number[5].problems == ("state: value 9 is neither on [2] nor off [1]",)
    # the total answers -1 (a model that does not meter): refused, and the outlets cannot
    # stand in for it since three have no power
    assert reading.total_watts is None
    assert reading.problems == ["total: out of range: -10 not in [0, 500000]"]
    assert (reading.n_missing, reading.n_malformed, reading.n_out_of_range) == (1, 2, 2)


@pytest.mark.parametrize("where", ["wrong community", "closed port"])
def test_no_answer_is_a_quick_timeout_naming_what_to_check(agent: Agent, where: str) -> None:
    if where == "wrong community":
        target = agent.target("no-such-community", timeout_s=0.5, retries=0)
    else:
        target = SnmpTarget("127.0.0.1", 9, "2c", "public", timeout_s=0.5, retries=0)
    with pytest.raises(SnmpTimeout, match=r"did not answer within 0.5 s; check the address"):
        read(target, load_profile("apc-rpdu2"))


def test_an_agent_without_the_profiles_oids_is_an_error(agent: Agent) -> None:
    with pytest.raises(SnmpError, match=r"has no outlet under 1\.3\.6\.1\.4\.1\.13742"):
        read(agent.target("apc-rpdu2"), load_profile("raritan-px"))


def test_v3_with_authentication_reads_like_v2c(agent: Agent) -> None:
    reading, _ = read(agent.v3_target("apc-rpdu2"), load_profile("apc-rpdu2"))
    walked, _ = read(agent.target("apc-rpdu2"), load_profile("apc-rpdu2"))
    assert rows(reading) == rows(walked)
    assert reading.total_watts == 990.0


def test_v3_with_privacy_reads_like_v2c(agent: Agent) -> None:
    """authPriv (SHA, AES-128): the agent answers only encrypted requests with the right key."""
    reading, _ = read(agent.v3_target("apc-rpdu2", priv_key=V3_PRIV_KEY), load_profile("apc-rpdu2"))
    plain, _ = read(agent.target("apc-rpdu2"), load_profile("apc-rpdu2"))
    assert reading.total_watts == plain.total_watts
    with pytest.raises(SnmpError, match=r"check the address, the port, the v3 user"):
        read(agent.v3_target("apc-rpdu2", priv_key="not-the-priv-key"), load_profile("apc-rpdu2"))


def test_v3_with_a_wrong_key_is_an_error_naming_the_credentials(agent: Agent) -> None:
    with pytest.raises(SnmpError, match=r"check the address, the port, the v3 user") as caught:
        read(agent.v3_target("apc-rpdu2", auth_key="not-the-key"), load_profile("apc-rpdu2"))
    assert "not-the-key" not in str(caught.value)
