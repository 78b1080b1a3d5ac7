"""`[site]` and `[energy]`: the tariff and PUE the accounting is given, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from rackwatch.errors import ConfigError
from rackwatch.settings import energy_config, load_settings


def test_defaults_are_twenty_cents_in_utc() -> None:
    config = energy_config(load_settings())
    assert (config.tariff.price_per_kwh, config.tariff.currency) == (0.20, "EUR")
    assert (config.tariff.timezone, config.tariff.periods, config.pue) == ("UTC", (), None)


def test_a_toml_file_with_periods(tmp_path: Path) -> None:
    path = tmp_path / "rackwatch.toml"
    path.write_text(
        """
[site]
timezone = "Europe/Paris"

[energy]
price_per_kwh = 0.15
currency = "CHF"
pue = 1.4

[[energy.periods]]
name = "peak"
price_per_kwh = 0.25
days = ["mon", "tue", "wed", "thu", "fri"]
hours = [8, 20]

[[energy.periods]]
name = "weekend-night"
price_per_kwh = 0.09
days = ["sat", "sun"]
hours = [22, 6]
""",
        encoding="utf-8",
    )
    settings = load_settings(path)
    assert settings.site.timezone == "Europe/Paris"
    config = energy_config(settings)
    t = config.tariff
    assert (t.price_per_kwh, t.currency, t.timezone, config.pue) == (
        0.15,
        "CHF",
        "Europe/Paris",
        1.4,
    )
    assert [(p.name, p.days, p.hours) for p in t.periods] == [
        ("peak", ("mon", "tue", "wed", "thu", "fri"), (8, 20)),
        ("weekend-night", ("sat", "sun"), (22, 6)),
    ]


def test_environment_variables_set_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RACKWATCH_ENERGY__PRICE_PER_KWH", "0.31")
    monkeypatch.setenv("RACKWATCH_SITE__TIMEZONE", "America/New_York")
    config = energy_config(load_settings())
    assert (config.tariff.price_per_kwh, config.tariff.timezone) == (0.31, "America/New_York")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"site": {"timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
        ({"energy": {"price_per_kwh": -0.1}}, "energy.price_per_kwh"),
        ({"energy": {"price_per_kwh": float("nan")}}, "finite number"),
        ({"energy": {"currency": "euro"}}, "energy.currency"),
        ({"energy": {"pue": 0.8}}, "energy.pue"),
        ({"energy": {"pue": 3.5}}, "energy.pue"),
        ({"energy": {"periods": [{"name": "p", "price_per_kwh": 1, "hours": [9, 9]}]}}, "hours"),
        ({"energy": {"periods": [{"name": "p", "price_per_kwh": 1, "days": ["mo"]}]}}, "days"),
        (
            {
                "energy": {
                    "periods": [
                        {"name": "a", "price_per_kwh": 1, "hours": [8, 20]},
                        {"name": "b", "price_per_kwh": 2, "days": ["tue"], "hours": [6, 9]},
                    ]
                }
            },
            "'a' and 'b' overlap on tue at 08:00",
        ),
        ({"energy": {"tarif": 0.2}}, "energy.tarif"),
    ],
)
def test_bad_values_are_refused_naming_them(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)
