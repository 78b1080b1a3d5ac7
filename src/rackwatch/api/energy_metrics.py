"""The live accountant's counters in `/metrics` (engine/energy/live.py).

`rackwatch_energy_joules_total{entity, group}`: IT energy since the server started, per server
(or host), rack, room and the site: as many series as power series, plus racks, rooms and one.
`rackwatch_fan_energy_joules_total` and `rackwatch_facility_energy_joules_total` (measured by
the facility meter, else IT x the configured PUE; absent when neither is known) for the site.
Read from the accountant's snapshot, replaced whole after each batch: safe in the exposition's
worker thread. `increase(rackwatch_energy_joules_total{group="rack"}[1h]) / 3.6e6` is each
rack's kWh over the last hour.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric

from rackwatch.api.deps import ApiContext

NAMES = ("energy_joules", "fan_energy_joules", "facility_energy_joules")
"""The families, without the prefix (prometheus.OWN_NAMES keeps telemetry off them)."""


class EnergyCollector:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterable[Metric]:
        live = self.ctx.energy.live
        if live is None:
            return
        totals = live.totals()
        energy = CounterMetricFamily(
            "rackwatch_energy_joules",
            "IT energy since the server started, in joules, per server (power_watts, or a "
            "host's GPUs), rack, room and the site (group).",
            labels=("entity", "group"),
        )
        for group, entity, joules in totals.counters():
            energy.add_metric((entity, group), joules)
        yield energy
        yield CounterMetricFamily(
            "rackwatch_fan_energy_joules",
            "Fan energy since the server started, in joules (part of the servers' IT energy).",
            value=totals.fan_joules,
        )
        if totals.facility_joules is not None:
            yield CounterMetricFamily(
                "rackwatch_facility_energy_joules",
                "Facility energy since the server started, in joules: the facility meter's, "
                "else IT x the configured PUE.",
                value=totals.facility_joules,
            )
