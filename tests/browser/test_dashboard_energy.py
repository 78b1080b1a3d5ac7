"""The overview's "Energy today" tile in a real Chromium against the real `rackwatch run`
(fixtures in conftest.py): it appears, shows today's kWh, its cost with the currency and the
running PUE from the live accountant, and logs no error."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_the_energy_tile_shows_kwh_cost_and_pue(live_server: str, open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto(live_server)
    tab.page.wait_for_selector("#energy-today:not([hidden])")
    tab.page.wait_for_function(
        "() => /\\d\\.\\d\\d kWh/.test(document.querySelector('#energy-kwh').textContent)"
    )
    assert re.fullmatch(r"[\d.,]+ kWh", tab.page.text_content("#energy-kwh").strip())
    cost = tab.page.text_content("#energy-cost").strip()
    assert re.search(r"\d", cost) and ("€" in cost or "EUR" in cost), cost
    # the twin's room has a facility meter: a measured PUE, as realistic rooms have
    pue = tab.page.text_content("#energy-pue").strip()
    assert re.fullmatch(r"PUE 1\.\d\d", pue), pue
    assert "cooling and losses" in (tab.page.get_attribute("#energy-today", "title") or "")
    tab.assert_no_errors()
