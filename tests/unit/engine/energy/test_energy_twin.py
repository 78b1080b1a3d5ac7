"""On the twin: the site's energy from the servers equals the integral of the room's
`it_power_watts` (the twin's own meter) within 1 %, gaps filled when a server misses ten
minutes; the live accountant fed the same batches agrees with the store's accounting."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.app import inventory_records
from rackwatch.engine.energy import LiveEnergy, Membership, Tariff, account, held_kwh
from rackwatch.model import SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.twin import Twin

START = 1_767_225_600_000
HOURS = 2
END = START + HOURS * 3_600_000
HOLE = (START + 3_600_000, START + 3_600_000 + 10 * 60_000)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """Two hours of the small room (5 servers), c01/r01/s02's power absent for 10 minutes;
    the same batches into the store and the live accountant."""
    registry = SeriesRegistry()
    store = DuckDBStore(tmp_path_factory.mktemp("twin"), registry, clock=lambda: END)
    twin = Twin.from_scenario("small", seed=2, start_ms=START)
    store.upsert_inventory(inventory_records(twin))
    source = TwinSource(twin, registry)
    live = LiveEnergy(registry, Tariff(0.2), membership=Membership.of(store.inventory()))
    hole_id = registry.get("c01/r01/s02", "power_watts")
    it_id = registry.get("room", "it_power_watts")
    it_ts, it_w = [], []
    for _ in range(HOURS):
        batch, _events = source.read(720)
        hole = (batch.series == hole_id) & (batch.ts >= HOLE[0]) & (batch.ts < HOLE[1])
        batch = batch.take(~hole)
        store.write(batch)
        live.update(batch)
        room = batch.series == it_id
        it_ts.append(batch.ts[room])
        it_w.append(batch.value[room])
    store.flush()
    it_kwh = held_kwh(np.concatenate(it_ts), np.concatenate(it_w), end_ms=END)
    yield store, live, it_kwh
    store.close()


def test_the_site_energy_is_the_room_meters_integral(run) -> None:
    store, _live, it_kwh = run
    r = account(store, START, END, group="rack", tariff=Tariff(0.2))
    assert r.estimated_kwh == pytest.approx(it_kwh, rel=0.01)
    assert r.total.metered_kwh == pytest.approx(it_kwh, rel=0.001)  # the meter itself
    # the hole: 600 s of one of 5 servers; measured misses about its share
    assert r.total.gap_s == pytest.approx(600)
    assert r.total.covered_s == pytest.approx(5 * HOURS * 3600 - 600)
    assert it_kwh * 0.97 < r.energy_kwh < it_kwh * 0.995
    rows = {row.entity: row for row in r.rows}
    assert rows["c01/r01"].metered_kwh == pytest.approx(it_kwh, rel=0.001)  # its PDU
    assert r.pue_source == "measured" and 1.1 < (r.pue or 0) < 1.8
    assert r.facility_source == "facility_meter"


def test_the_live_accountant_agrees_with_the_store(run) -> None:
    store, live, _it_kwh = run
    r = account(store, START, END, group="server", tariff=Tariff(0.2))
    totals = live.totals()
    assert totals.it_joules / 3.6e6 == pytest.approx(r.energy_kwh, rel=0.001)
    servers = {e: j / 3.6e6 for g, e, j in totals.counters() if g == "server"}
    assert servers == pytest.approx({row.entity: row.energy_kwh for row in r.rows}, rel=0.001)
    assert totals.fan_joules / 3.6e6 == pytest.approx(r.fan_kwh, rel=0.001)
    assert totals.pue == pytest.approx(r.pue, rel=0.001)
