"""PDU profiles (data files) are validated with a clear error naming the file and the field;
the shipped ones load; a user's file adds a vendor without code. `[[pdus]]` settings become
poll targets, a wrong one refused with its name, secrets never shown."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rackwatch.app import pdu_targets
from rackwatch.errors import ConfigError
from rackwatch.settings import load_settings
from rackwatch.sources.snmp.client import SnmpTarget
from rackwatch.sources.snmp.poller import PduTarget
from rackwatch.sources.snmp.profiles import (
    ProfileError,
    load_profile,
    shipped_profiles,
)
from rackwatch.sources.snmp.reader import interpret

GOOD = """
name = "acme"
[power]
oid = "1.3.6.1.4.1.4242.1.{outlet}.2"
scale = 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acme.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_profiles_load() -> None:
    assert shipped_profiles() == ["apc-rpdu2", "generic", "raritan-px"]
    apc = load_profile("apc-rpdu2")
    assert apc.total is not None and apc.total.scale == 10.0  # hundredths of kW
    raritan = load_profile("raritan-px")
    assert raritan.state is not None and raritan.state.is_on(7) and not raritan.state.is_on(8)
    assert load_profile("generic").needs_root


def test_a_users_file_adds_a_vendor(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, GOOD)))
    assert (profile.name, profile.power.scale, profile.current) == ("acme", 0.5, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n', r"acme\.toml: power: Field required"),
        (GOOD + "colour = 'red'\n", r"colour: Extra inputs are not permitted"),
        (GOOD.replace(".{outlet}.2", ".2"), r"power\.oid: an outlet OID holds \{outlet\}"),
        (GOOD.replace("1.3.6", "iso.3.6"), r"power\.oid: not a numeric OID template"),
        (GOOD.replace("0.5", "0"), r"power: Value error, scale must not be 0|scale must not be 0"),
        (GOOD.replace("0.5", "nan"), r"scale must be a finite number"),
        (GOOD + "[total]\noid = '1.3.6.1.{outlet}'\n", r"total\.oid: the total is one OID"),
        (
            GOOD + "[state]\noid = '1.3.6.1.{outlet}'\non = [1]\noff = [1]\n",
            r"state: values \[1\] are both on and off",
        ),
        (GOOD + "[state]\noid = '1.3.6.1.{outlet}'\non = []\noff = [2]\n", r"state\.on"),
        (GOOD.replace("scale = 0.5", "min = 10\nmax = 1"), r"min \(10.0\) is above max"),
        ("name = [", r"not valid TOML"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=message) as caught:
        load_profile(str(path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)  # one line


def test_unknown_names_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="use one of apc-rpdu2, generic, raritan-px"):
        load_profile("eaton")
    with pytest.raises(ProfileError, match="cannot read it"):
        load_profile(str(tmp_path / "none.toml"))


def test_root_oid_is_required_and_checked_for_the_generic_profile() -> None:
    generic = load_profile("generic")
    with pytest.raises(ProfileError, match="give root_oid"):
        generic.resolve(None)
    with pytest.raises(ProfileError, match="not a numeric OID"):
        generic.resolve("enterprises.99")
    assert generic.resolve(".1.3.6.1.4.1.9").power.oid == "1.3.6.1.4.1.9.{outlet}"


def test_secrets_stay_out_of_reprs() -> None:
    target = SnmpTarget(
        "pdu1",
        version="3",
        user="ops",
        auth_protocol="sha",
        auth_key="s3cret-auth",
        priv_key="s3cret-priv",
        community="s3cret-community",
    )
    assert "s3cret" not in repr(target)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"version": "3"}, "needs a user"),
        ({"version": "3", "user": "u", "auth_protocol": "sha", "auth_key": "short"}, "8 char"),
        (
            {"version": "3", "user": "u", "priv_protocol": "aes", "priv_key": "longenough"},
            "privacy needs authentication",
        ),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"auth_protocol": "rot13"}, "auth_protocol"),
    ],
)
def test_bad_snmp_targets_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SnmpTarget("pdu1", **options)  # type: ignore[arg-type]


def test_a_read_must_fit_in_its_interval() -> None:
    with pytest.raises(ValueError, match="must not exceed interval_s"):
        PduTarget(
            "pdu/a",
            SnmpTarget("pdu1", timeout_s=10, retries=3),
            load_profile("apc-rpdu2"),
            interval_s=30,
        )


CONFIG = """
[twin]
enabled = false

[[pdus]]
name = "rack1-a"
host = "10.0.0.5"
community = "s3cret"
profile = "apc-rpdu2"
interval_seconds = 30
[pdus.outlets]
1 = "web1"
2 = "web1"
3 = "c01/r01/s01"

[[pdus]]
name = "c01/r02/pdu"
host = "10.0.0.6"
version = 1
profile = "generic"
root_oid = "1.3.6.1.4.1.99999.1.1"
outlet_count = 8
"""


def test_pdus_settings_become_targets(tmp_path: Path) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    assert "s3cret" not in repr(settings.pdus[0])
    first, second = pdu_targets(settings)
    assert first.name == "pdu/rack1-a"
    assert first.snmp.community == "s3cret" and first.snmp.version == "2c"
    assert dict(first.machines) == {1: "host/web1", 2: "host/web1", 3: "c01/r01/s01"}
    assert second.name == "c01/r02/pdu"
    assert (second.snmp.version, second.outlet_count) == ("1", 8)
    assert second.profile.power.oid == "1.3.6.1.4.1.99999.1.1.{outlet}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('profile = "generic"\nroot_oid', 'profile = "generic"\nxroot'), "Extra inputs"),
        (('root_oid = "1.3.6.1.4.1.99999.1.1"', ""), r"\[\[pdus\]\] c01/r02/pdu: .*give root_oid"),
        (('3 = "c01/r01/s01"', '3 = "bad path!"'), r"\[\[pdus\]\] rack1-a: bad entity path"),
        (("outlet_count = 8", "outlet_count = 8\n[pdus.outlets]\n9 = 'x'"), "outlet 9 is not"),
        (('profile = "apc-rpdu2"', 'profile = "eaton"'), "no PDU profile named 'eaton'"),
        (("1.3.6.1.4.1.99999.1.1", "9.9.9"), "not a numeric OID"),
        (('profile = "apc-rpdu2"', 'profile = "/dev/zero"'), "not a regular file"),
        (('name = "c01/r02/pdu"', 'name = "rack1-a"'), "two \\[\\[pdus\\]\\] are named"),
    ],
)
def test_a_wrong_pdu_is_refused_with_its_name(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text(CONFIG.replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        pdu_targets(load_settings(config))
    assert "s3cret" not in str(caught.value)


def test_v3_privacy_without_the_cipher_package_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cryptography` is a dependency; an installation that lacks it says so at start."""
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "cryptography" else found(name, *rest),
    )
    with pytest.raises(ValueError, match="needs the Python package `cryptography`"):
        SnmpTarget(
            "pdu1",
            version="3",
            user="ops",
            auth_protocol="sha",
            auth_key="12345678",
            priv_protocol="aes",
            priv_key="12345678",
        )


DECLARED = """
[[pdus]]
name = "c01/r01/pdu"
host = "10.0.0.9"
profile = "apc-rpdu2"
[pdus.outlets]
5 = "web5"

[[inventory.racks]]
path = "c01/r01"

[[inventory.pdus]]
path = "c01/r01/pdu"
rack = "c01/r01"
outlets = 24

[[inventory.machines]]
path = "host/gpu01"
outlets = ["c01/r01/pdu:3", "c01/r01/pdu:4"]
"""


def test_the_declared_inventory_says_what_is_plugged_where_too(tmp_path: Path) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text(DECLARED, encoding="utf-8")
    (target,) = pdu_targets(load_settings(config))
    assert dict(target.machines) == {3: "host/gpu01", 4: "host/gpu01", 5: "host/web5"}


def test_an_outlet_given_two_machines_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text(DECLARED.replace('5 = "web5"', '3 = "web5"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="outlet 3 feeds host/web5 here but host/gpu01"):
        pdu_targets(load_settings(config))


def test_a_column_the_pdu_lacks_entirely_is_no_problem() -> None:
    # a metered APC that cannot switch: no state at all; current only for some outlets
    reading = interpret(
        load_profile("apc-rpdu2"),
        [1, 2],
        {"power": {1: 100, 2: 200}, "current": {1: 4}, "label": {}},
        ts_ms=1,
    )
    assert [o.is_on for o in reading.outlets] == [None, None]
    assert reading.outlets[0].problems == ()
    assert reading.outlets[1].problems == ("current: no such object",)
    assert (reading.n_missing, reading.total_watts, reading.total_is_sum) == (1, 300.0, True)
