"""Query vocabulary: tier choice, retention, validation of queries."""

from __future__ import annotations

import pytest

from rackwatch.errors import StoreError
from rackwatch.store.base import DAY_MS, Query, Retention, Tier, choose_tier, parse_tier

NOW = 1_000 * DAY_MS
HOUR = 3_600_000


@pytest.mark.parametrize(
    ("step", "tier"),
    [
        (None, Tier.RAW),
        (1_000, Tier.RAW),
        (59_999, Tier.RAW),
        (60_000, Tier.M1),
        (300_000, Tier.M1),
        (90_000, Tier.RAW),  # 1-minute buckets cannot make 90 s ones
        (3_599_999, Tier.RAW),
        (HOUR, Tier.H1),
        (DAY_MS, Tier.H1),
        (5_400_000, Tier.M1),  # 90 minutes: hours don't divide it, minutes do
    ],
)
def test_coarsest_tier_that_fits_the_step(step, tier):
    assert choose_tier(step, NOW - HOUR, NOW, Retention()) is tier


def test_range_beyond_retention_falls_to_a_coarser_tier():
    r = Retention(raw_ms=DAY_MS, m1_ms=10 * DAY_MS, h1_ms=100 * DAY_MS)
    assert choose_tier(None, NOW - DAY_MS, NOW, r) is Tier.RAW
    assert choose_tier(None, NOW - DAY_MS - 1, NOW, r) is Tier.M1
    assert choose_tier(60_000, NOW - 11 * DAY_MS, NOW, r) is Tier.H1
    assert choose_tier(None, NOW - 1_000 * DAY_MS, NOW, r) is Tier.H1  # coarsest left


def test_bad_inputs_are_refused_with_a_clear_message():
    with pytest.raises(StoreError, match="ends before it starts"):
        Query(10, 5)
    with pytest.raises(StoreError, match="positive"):
        Query(0, 10, step_ms=0)
    with pytest.raises(StoreError, match="positive"):
        choose_tier(-5, 0, NOW, Retention())
    with pytest.raises(StoreError, match="unknown tier"):
        Query(0, 10, tier="5m")
    with pytest.raises(StoreError, match="unknown tier"):
        parse_tier("daily")
    with pytest.raises(StoreError, match="empty"):
        Query(0, 10, entity="")
    with pytest.raises(ValueError, match="positive"):
        Retention(raw_ms=0)


def test_tier_widths_and_names():
    assert [t.value for t in Tier] == ["raw", "1m", "1h"]
    assert [t.width_ms for t in Tier] == [0, 60_000, HOUR]
    assert parse_tier("1h") is Tier.H1
