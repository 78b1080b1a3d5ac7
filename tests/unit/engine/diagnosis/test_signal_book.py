"""The signal book's per-series arrays as the registry grows a device at a time."""

from __future__ import annotations

from rackwatch.engine.diagnosis.signals import SignalBook
from rackwatch.model import Batch, SeriesRegistry


def test_arrays_stay_bounded_when_devices_join_one_after_another() -> None:
    # Each device announcing itself adds a series between two batches: the arrays must double
    # only when full, not on every growth (they reached gigabytes under a load test).
    reg = SeriesRegistry()
    first = [reg.intern(f"c01/r01/s{i:02d}", "inlet_temperature_celsius") for i in range(10)]
    book = SignalBook(reg)
    book.update(Batch.of([1000] * 10, first, [20.0] * 10))
    for step in range(12):
        sid = reg.intern(f"c01/r02/probe{step:02d}", "inlet_temperature_celsius")
        book.update(Batch.of([2000 + step], [sid], [21.0 + step]))
    n = len(reg)
    arrays = (book.latest, book.latest_ts, book.reference, book.peak, book.flat_since)
    assert all(n <= len(a) <= 2 * n for a in (*arrays, book.rule_code, book.partner))
    # growing kept what was there, and the new series are indexed and tracked
    assert book.latest[first[0]] == 20.0
    last = book.series("c01/r02/probe11", "inlet_temperature_celsius")
    assert last == n - 1
    assert book.latest[last] == 32.0


def test_a_new_fan_is_paired_with_its_level_after_growth() -> None:
    reg = SeriesRegistry()
    book = SignalBook(reg)
    book.update(Batch.of([], [], []))
    rpm = reg.intern("c01/r01/s01/fan1", "fan_rpm")
    book.update(Batch.of([1000], [rpm], [3000.0]))
    level = reg.intern("c01/r01/s01/fan1", "fan_level")
    book.update(Batch.of([2000], [level], [2.0]))
    assert book.partner[rpm] == level
    assert book.fans_of("c01/r01/s01") == ["c01/r01/s01/fan1"]
