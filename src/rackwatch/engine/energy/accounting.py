"""`account`: energy and cost over any period, per server, rack, room or the whole site.

The integrals run in SQL over the store's rollup tiers (buckets.py: which tier, and what a
bucket's energy is); only one row per series and tariff period comes back to Python, where
the series are summed into groups (members.py says who belongs where). Per series:

    measured_j  = Σ buckets avg_w x covered_s              (buckets.py)
    gap_s       = span_s - covered_s                        (span: the whole range)
    estimated_j = measured_j + (measured_j / covered_s) x gap_s   (gaps at its mean power)
    cost        = Σ buckets joules x price(bucket start) / 3.6e6
    estimated_cost = cost + (estimated - measured) kWh x the range's mean price

A series with no reading anywhere in the range is left out (it did not exist then, or was
retired); one that starts or stops inside it shows the rest as its gap.

**Facility and PUE.** The PUE is measured when the store has a room's `facility_power_watts`
and `it_power_watts` (the twin): their energies' ratio over the period, read whatever the
`entity` selects. Else the configured `pue`, else unknown. The facility energy is the facility
meter's (the whole site selected and a meter there), else the selection's IT x the measured
PUE, else its PDU total x the configured PUE (PDU totals include what no server meter sees),
else its IT x the configured PUE (`facility_source` says which).

Costs are in the tariff's currency. docs/ENERGY.md has the method with a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rackwatch.engine.energy import buckets
from rackwatch.engine.energy.integrate import J_PER_KWH
from rackwatch.engine.energy.members import (
    POWER_METRICS,
    ROLE_CODES,
    SITE,
    Membership,
    Role,
    roles_of,
)
from rackwatch.engine.energy.optimisation import fan_saving
from rackwatch.engine.energy.report import EnergyReport, GroupRow, PeriodRow, TierSpan
from rackwatch.engine.energy.tariff import Tariff
from rackwatch.model.entity import compile_pattern, parent
from rackwatch.model.times import MAX_TS_MS
from rackwatch.store.base import Store

GROUPS = ("server", "rack", "room", "site")
PUE_BOUNDS = (1.0, 3.0)
"""A configured PUE outside this is a mistake (real rooms: 1.1-1.8)."""
F64 = npt.NDArray[np.float64]
_IT_ROLES = (Role.SERVER, Role.GPU)


def check_pue(pue: float | None) -> float | None:
    """A configured PUE, or ValueError saying what is accepted."""
    if pue is None:
        return None
    low, high = PUE_BOUNDS
    if isinstance(pue, bool) or not isinstance(pue, int | float) or not low <= pue <= high:
        raise ValueError(
            f"pue must be a number {low}..{high} (facility over IT energy; real rooms are "
            f"1.1-1.8), got {pue!r}"
        )
    return float(pue)


def account(
    store: Store,
    start_ms: int,
    end_ms: int,
    *,
    group: str = "site",
    tariff: Tariff,
    pue: float | None = None,
    entity: str = "**",
) -> EnergyReport:
    """Energy and cost of the series matching `entity` over [start_ms, end_ms), per `group`.

    `account(store, start_ms, end_ms, *, group, tariff, pue=None, entity="**") ->
    EnergyReport`:

    - `start_ms`, `end_ms`: epoch ms (UTC), rounded down to whole minutes (the report's
      `from_ms`, `to_ms`), at most 20 years apart; a range under a minute gives an empty
      report.
    - `group`: `server` (a row per server or host), `rack`, `room`, or `site` (one row).
    - `tariff`: prices, periods, currency and the site's time zone (`Tariff`).
    - `pue`: the configured PUE (1.0..3.0) of a site without a facility meter; a measured
      one (the twin's room) takes precedence.
    - `entity`: an entity glob over the servers, fans, PDUs and meters (`c01/r01/**`).

    Raises ValueError for a bad argument (the message names it), StoreError when the store
    cannot answer. Runs SQL in the store's analytics session: call it from a worker thread,
    never on an event loop. A month of 2,000 servers (10,050 series, fans included) takes
    about 1.5 s on 2 cores (2.7 s CPU), the fans' saving half of it (bench/bench_energy.py).
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    for name, value in (("start_ms", start_ms), ("end_ms", end_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TS_MS:
            raise ValueError(f"{name} must be epoch ms within 1970..9999, got {value!r}")
    if end_ms <= start_ms:
        raise ValueError(f"start_ms ({start_ms}) must be before end_ms ({end_ms})")
    if end_ms - start_ms > buckets.MAX_RANGE_MS:
        raise ValueError(
            f"the range is {(end_ms - start_ms) / buckets.DAY_MS:,.0f} days long: account at "
            f"most {buckets.MAX_RANGE_MS // buckets.DAY_MS:,} days (20 years) at a time"
        )
    if not isinstance(tariff, Tariff):
        raise ValueError(f"tariff must be a Tariff, got {tariff!r}")
    pue = check_pue(pue)
    pattern = compile_pattern(entity)
    start, end = buckets.aligned(start_ms, end_ms)
    parts = buckets.windows(start, end)
    membership = Membership.of(store.inventory())
    with store.analytics() as sql:
        keys = _power_keys(sql)
        plan = _Plan.of(keys, membership, pattern.match, group)
        prices = _price_table(tariff, parts)
        sql.register("_price", prices)
        sql.register("_sel", pa.table({"series": plan.ids}))
        try:
            per_series = _per_series(sql, parts, plan, tariff)
            measured_pue = _measured_pue(per_series, plan)
            use_pue = measured_pue if measured_pue is not None else pue
            fans = plan.fans(keys)
            saving = fan_saving(sql, parts, fans, use_pue) if fans else None
        finally:
            sql.unregister("_sel")
            sql.unregister("_price")
    span_s = (end - start) / 1000.0
    mean_price = _mean_price(prices)
    sums = _Sums.of(plan, per_series, span_s, mean_price)
    total = sums.rows(np.where(plan.selected, 0, -1), [SITE])[0]
    names, index = plan.row_index()
    rows = tuple(sums.rows(index, names))
    facility = _facility(plan, sums, total, measured_pue, pue, entity == "**")
    return EnergyReport(
        from_ms=start,
        to_ms=end,
        group=group,
        entity=entity,
        timezone=tariff.timezone,
        currency=tariff.currency,
        tiers=tuple(TierSpan(w.tier, w.from_ms, w.to_ms) for w in parts),
        total=total,
        facility_kwh=facility[0],
        facility_estimated_kwh=facility[1],
        facility_cost=facility[2],
        facility_source=facility[3],
        pue=use_pue,
        pue_source=None
        if use_pue is None
        else ("measured" if measured_pue is not None else "configured"),
        periods=_periods(plan, per_series, tariff),
        optimisation=saving,
        rows=rows if group != "site" else (total,),
    )


def _power_keys(sql: Any) -> list[tuple[int, str, str]]:
    metrics = ", ".join(f"'{m}'" for m in (*POWER_METRICS, "fan_level"))
    rows = sql.execute(
        f"SELECT series, entity, metric FROM series_keys WHERE metric IN ({metrics}) "
        "ORDER BY series"
    ).fetchall()
    return [(int(s), str(e), str(m)) for s, e, m in rows]


@dataclass(frozen=True, slots=True)
class _Plan:
    """The energy series of the store: role, row of the group, selected by the glob or not."""

    ids: npt.NDArray[np.int32]
    roles: list[Role]
    members: list[str]
    group_key: list[str | None]
    selected: npt.NDArray[np.bool_]
    """Matched by `entity` (the room meters are read for the PUE whatever it selects)."""
    codes: npt.NDArray[np.int8]
    """Each series' role, as `ROLE_CODES`."""

    @classmethod
    def of(
        cls,
        keys: Sequence[tuple[int, str, str]],
        membership: Membership,
        match: Any,
        group: str,
    ) -> _Plan:
        power = [(s, e, m) for s, e, m in keys if m != "fan_level"]
        found = roles_of([(e, m) for _, e, m in power])
        ids, roles, members, group_key, selected = [], [], [], [], []
        for (series, entity, _metric), (role, member) in zip(power, found, strict=True):
            if role is None or member is None:
                continue
            owner = parent(entity) if role in (Role.FAN, Role.PDU) else None
            rack = membership.rack(entity) if role is Role.PDU else None
            chosen = bool(
                match(entity) or match(member) or (owner is not None and match(owner))
            ) or (rack is not None and bool(match(rack)))
            if not chosen and role not in (Role.IT, Role.FACILITY):
                continue
            ids.append(series)
            roles.append(role)
            members.append(member)
            group_key.append(membership.group_of(role, member, group))
            selected.append(chosen)
        return cls(
            np.array(ids, dtype=np.int32),
            roles,
            members,
            group_key,
            np.array(selected, dtype=bool),
            np.array([ROLE_CODES[r] for r in roles], dtype=np.int8),
        )

    def mask(self, *roles: Role) -> npt.NDArray[np.bool_]:
        return np.isin(self.codes, [ROLE_CODES[r] for r in roles])

    def row_index(self) -> tuple[list[str], npt.NDArray[np.int64]]:
        """The group's row names, sorted, and each series' row (-1: none, or not selected)."""
        names = sorted(
            {k for k, chosen in zip(self.group_key, self.selected, strict=True) if k and chosen}
        )
        at = {name: i for i, name in enumerate(names)}
        index = np.array(
            [
                at[k] if k and chosen else -1
                for k, chosen in zip(self.group_key, self.selected, strict=True)
            ],
            dtype=np.int64,
        )
        return names, index

    def fans(self, keys: Sequence[tuple[int, str, str]]) -> list[tuple[int, int | None]]:
        """(power series, level series or None) of every selected fan."""
        level = {e: s for s, e, m in keys if m == "fan_level"}
        return [
            (int(self.ids[i]), level.get(self.members[i]))
            for i in np.flatnonzero(self.mask(Role.FAN) & self.selected).tolist()
        ]


@dataclass(frozen=True, slots=True)
class _PerSeries:
    """SQL results aligned with the plan's series (0 for a series with no bucket)."""

    joules: F64
    covered_s: F64
    cost: F64
    has_data: npt.NDArray[np.bool_]
    by_period: dict[int, tuple[F64, F64]]
    """Tariff period index -> (joules, cost) per plan series."""


def _per_series(sql: Any, parts: list[buckets.Window], plan: _Plan, tariff: Tariff) -> _PerSeries:
    n = len(plan.ids)
    joules, covered, cost = np.zeros(n), np.zeros(n), np.zeros(n)
    has = np.zeros(n, dtype=bool)
    by_period: dict[int, tuple[F64, F64]] = {}
    if n == 0 or not parts:
        return _PerSeries(joules, covered, cost, has, by_period)
    got = sql.execute(buckets.per_series_sql(parts)).fetchnumpy()
    where = {int(s): i for i, s in enumerate(plan.ids.tolist())}
    at = np.array([where[int(s)] for s in got["series"]], dtype=np.int64)
    j = _plain(got["joules"])
    c = _plain(got["cost"])
    np.add.at(joules, at, j)
    np.add.at(covered, at, _plain(got["covered_ms"]) / 1000.0)
    np.add.at(cost, at, c)
    has[at] = True
    period = np.asarray(got["period"], dtype=np.int64)
    for p in range(-1, len(tariff.periods)):
        rows = period == p
        if rows.any():
            pj, pc = np.zeros(n), np.zeros(n)
            np.add.at(pj, at[rows], j[rows])
            np.add.at(pc, at[rows], c[rows])
            by_period[p] = (pj, pc)
    return _PerSeries(joules, covered, cost, has, by_period)


def _plain(column: Any) -> F64:
    return np.asarray(np.ma.filled(np.ma.asarray(column, dtype=np.float64), 0.0))


def _price_table(tariff: Tariff, parts: list[buckets.Window]) -> pa.Table:
    ts, width = buckets.bucket_starts(parts)
    return pa.table(
        {
            "ts": ts,
            "width": width,
            "price": tariff.price_at(ts),
            "period": tariff.period_at(ts).astype(np.int32),
        }
    )


def _mean_price(prices: pa.Table) -> float:
    width = prices.column("width").to_numpy()
    if len(width) == 0:
        return 0.0
    return float(np.average(prices.column("price").to_numpy(), weights=width))


def _measured_pue(per: _PerSeries, plan: _Plan) -> float | None:
    facility = float(per.joules[plan.mask(Role.FACILITY)].sum())
    it = float(per.joules[plan.mask(Role.IT)].sum())
    if facility > 0 and it > 0:
        return facility / it
    return None


@dataclass(frozen=True, slots=True)
class _Sums:
    """Per plan series: measured and estimated energy (J), covered and gap time, costs."""

    plan: _Plan
    has_data: npt.NDArray[np.bool_]
    joules: F64
    covered_s: F64
    gap_s: F64
    cost: F64
    estimated_j: F64
    estimated_cost: F64

    @classmethod
    def of(cls, plan: _Plan, per: _PerSeries, span_s: float, mean_price: float) -> _Sums:
        # Never more than the range: a sparse series read irregularly may overlap itself.
        scale = np.where(per.covered_s > span_s, span_s / np.maximum(per.covered_s, 1e-9), 1.0)
        joules, cost = per.joules * scale, per.cost * scale
        covered = np.minimum(per.covered_s, span_s)
        gap = np.where(per.has_data, span_s - covered, 0.0)
        safe = np.where(covered > 0, covered, 1.0)
        filled = np.where(covered > 0, joules / safe, 0.0) * gap
        return cls(
            plan=plan,
            has_data=per.has_data,
            joules=joules,
            covered_s=covered,
            gap_s=gap,
            cost=cost,
            estimated_j=joules + filled,
            estimated_cost=cost + filled / J_PER_KWH * mean_price,
        )

    def rows(self, index: npt.NDArray[np.int64], names: Sequence[str]) -> list[GroupRow]:
        """A row per name: the series whose `index` is its position (-1: in no row)."""
        plan, n = self.plan, len(names)
        inside = index >= 0

        def total(mask: npt.NDArray[np.bool_], values: F64) -> F64:
            use = mask & inside
            return np.asarray(
                np.bincount(index[use], weights=values[use], minlength=n), dtype=np.float64
            )

        it = plan.mask(*_IT_ROLES) & self.has_data
        ones = np.ones(len(index))
        meters = []
        for role in (Role.IT, Role.PDU):  # a room's own meter, else its PDUs
            mask = plan.mask(role) & self.has_data
            meters.append((total(mask, ones) > 0, mask))
        has_it_meter, it_meter = meters[0]
        meter_of_row = np.where(has_it_meter, 0, np.where(meters[1][0], 1, -1))
        meter = np.where(meter_of_row[np.maximum(index, 0)] == 0, it_meter, meters[1][1])
        metered = total(meter, self.joules) / J_PER_KWH
        metered_est = total(meter, self.estimated_j) / J_PER_KWH
        metered_cov = total(meter, self.covered_s)
        metered_all = metered_cov + total(meter, self.gap_s)
        energy = total(it, self.joules) / J_PER_KWH
        estimated = total(it, self.estimated_j) / J_PER_KWH
        covered, gap = total(it, self.covered_s), total(it, self.gap_s)
        cost, estimated_cost = total(it, self.cost), total(it, self.estimated_cost)
        fan = total(plan.mask(Role.FAN), self.joules) / J_PER_KWH
        n_series = total(it, ones)
        out = []
        for i, name in enumerate(names):
            has_meter = meter_of_row[i] >= 0
            out.append(
                GroupRow(
                    entity=name,
                    energy_kwh=float(energy[i]),
                    estimated_kwh=float(estimated[i]),
                    covered_s=float(covered[i]),
                    gap_s=float(gap[i]),
                    cost=float(cost[i]),
                    estimated_cost=float(estimated_cost[i]),
                    fan_kwh=float(fan[i]),
                    n_series=int(n_series[i]),
                    metered_kwh=float(metered[i]) if has_meter else None,
                    metered_estimated_kwh=float(metered_est[i]) if has_meter else None,
                    metered_coverage=float(metered_cov[i] / metered_all[i])
                    if has_meter and metered_all[i] > 0
                    else None,
                )
            )
        return out

    def kwh(self, rows: npt.NDArray[np.bool_]) -> tuple[float, float, float]:
        """(measured kWh, estimated kWh, cost) of the rows."""
        return (
            float(self.joules[rows].sum()) / J_PER_KWH,
            float(self.estimated_j[rows].sum()) / J_PER_KWH,
            float(self.cost[rows].sum()),
        )


def _facility(
    plan: _Plan,
    sums: _Sums,
    total: GroupRow,
    measured_pue: float | None,
    pue: float | None,
    whole_site: bool,
) -> tuple[float | None, float | None, float | None, str | None]:
    """(kWh, estimated kWh, cost, source) of the facility; see the module docstring."""
    meter = plan.mask(Role.FACILITY) & sums.has_data
    if whole_site and meter.any() and measured_pue is not None:
        return (*sums.kwh(meter), "facility_meter")
    if measured_pue is not None:
        f = measured_pue
        kwh, est, cost = total.energy_kwh * f, total.estimated_kwh * f, total.cost * f
        return kwh, est, cost, "it_times_measured_pue"
    if pue is None:
        return None, None, None, None
    pdus = plan.mask(Role.PDU) & plan.selected & sums.has_data
    if pdus.any():
        kwh, est, cost = sums.kwh(pdus)
        return kwh * pue, est * pue, cost * pue, "pdu_times_pue"
    return total.energy_kwh * pue, total.estimated_kwh * pue, total.cost * pue, "it_times_pue"


def _periods(plan: _Plan, per: _PerSeries, tariff: Tariff) -> tuple[PeriodRow, ...]:
    it = plan.selected & plan.mask(*_IT_ROLES)
    names = tariff.period_names()
    out = []
    for index in sorted(per.by_period, key=lambda p: (p < 0, p)):
        joules, cost = per.by_period[index]
        price = tariff.price_per_kwh if index < 0 else tariff.periods[index].price_per_kwh
        out.append(
            PeriodRow(
                name=names[index],
                price_per_kwh=price,
                energy_kwh=float(joules[it].sum()) / J_PER_KWH,
                cost=float(cost[it].sum()),
            )
        )
    return tuple(out)
