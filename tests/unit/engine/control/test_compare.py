"""compare_policies measures auto against fixed levels on the twin (short runs here)."""

from __future__ import annotations

import pytest

from rackwatch.engine.control.compare import compare_policies, run_policy


def test_auto_uses_less_fan_energy_than_always_high_and_reports_the_heat() -> None:
    report = compare_policies("small", 2 * 3600.0, seed=3, policies=("auto", "always-high"))
    auto, high = report.run("auto"), report.run("always-high")
    assert report.n_servers == 5 and report.n_fans == 10 and report.target_c == 65.0
    assert 0.5 < report.saving_ratio() < 1.0
    assert auto.fan_kwh < high.fan_kwh and auto.it_kwh < high.it_kwh
    assert high.level_share == (0.0, 0.0, 0.0, 1.0)
    assert high.max_cpu_c <= auto.max_cpu_c < 75.0
    assert auto.n_commands > 0 and auto.n_level_changes > 0
    assert sum(auto.level_share) == pytest.approx(1.0)
    text = report.format()
    assert "auto saves" in text and "always-high" in text


def test_the_same_seed_gives_the_same_run() -> None:
    first = run_policy("small", "auto", 600.0, seed=5)
    second = run_policy("small", "auto", 600.0, seed=5)
    assert (first.fan_kwh, first.max_cpu_c, first.n_commands) == (
        second.fan_kwh,
        second.max_cpu_c,
        second.n_commands,
    )


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fan policy"):
        run_policy("small", "always-turbo", 60.0, seed=0)
    with pytest.raises(KeyError, match="no run of policy"):
        compare_policies("small", 60.0, policies=("always-low",)).run("auto")
