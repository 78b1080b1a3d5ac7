"""What `account` answers: frozen records with `to_dict()` in plain snake_case keys (the JSON of
`GET /api/v1/energy`, `rackwatch energy --format json` and the reports).

Two figures for every energy: **measured** (`energy_kwh`: the integral of what was read, gaps
contribute nothing) and **estimated** (`estimated_kwh`: the same with each series' gaps filled
at its mean power over the period). `covered_s` and `gap_s` are series-seconds (two servers
each missing 10 minutes: 1,200 s of gap) and `coverage` = covered / (covered + gap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rackwatch.model.times import iso


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One server, rack, room, or the site: the IT energy of its series."""

    entity: str
    energy_kwh: float
    estimated_kwh: float
    covered_s: float
    gap_s: float
    cost: float
    estimated_cost: float
    fan_kwh: float
    """Its fans' energy (part of its servers' in the twin, where power_watts includes them)."""
    n_series: int
    """Power series counted (servers, and the GPUs of hosts without a power of their own)."""
    metered_kwh: float | None = None
    """Its own meter: a rack's PDU total, a room's `it_power_watts` (the site: the rooms'
    meters, else the PDUs'); None when it has none."""
    metered_estimated_kwh: float | None = None
    metered_coverage: float | None = None

    @property
    def coverage(self) -> float | None:
        total = self.covered_s + self.gap_s
        return self.covered_s / total if total > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "energy_kwh": _r(self.energy_kwh, 6),
            "estimated_kwh": _r(self.estimated_kwh, 6),
            "covered_s": _r(self.covered_s, 3),
            "gap_s": _r(self.gap_s, 3),
            "coverage": _r(self.coverage, 6),
            "cost": _r(self.cost, 6),
            "estimated_cost": _r(self.estimated_cost, 6),
            "fan_kwh": _r(self.fan_kwh, 6),
            "n_series": self.n_series,
            "metered_kwh": _r(self.metered_kwh, 6),
            "metered_estimated_kwh": _r(self.metered_estimated_kwh, 6),
            "metered_coverage": _r(self.metered_coverage, 6),
        }


@dataclass(frozen=True, slots=True)
class PeriodRow:
    """The selection's measured IT energy and cost in one tariff period."""

    name: str
    price_per_kwh: float
    energy_kwh: float
    cost: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "price_per_kwh": self.price_per_kwh,
            "energy_kwh": _r(self.energy_kwh, 6),
            "cost": _r(self.cost, 6),
        }


@dataclass(frozen=True, slots=True)
class FanSaving:
    """ "Optimisation gained": the fans' energy under the policy that ran against what they
    would have drawn at high over the same covered time (optimisation.py has the model)."""

    fan_kwh: float
    """Measured, fans with an estimate only."""
    always_high_kwh: float
    saved_kwh: float
    """IT energy saved: always_high_kwh - fan_kwh."""
    saving_ratio: float | None
    pue: float | None
    """The PUE applied to the saving (None: unknown, the facility figures are too)."""
    saved_facility_kwh: float | None
    """saved_kwh x pue: what the facility meter would have shown more."""
    saved_cost: float
    """At the tariff, on the facility saving when the PUE is known, else on the IT saving."""
    n_fans: int
    n_fans_unknown: int
    """Fans left out: never at a steady level above off in the range, or no level series."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fan_kwh": _r(self.fan_kwh, 6),
            "always_high_kwh": _r(self.always_high_kwh, 6),
            "saved_kwh": _r(self.saved_kwh, 6),
            "saving_ratio": _r(self.saving_ratio, 6),
            "pue": _r(self.pue, 6),
            "saved_facility_kwh": _r(self.saved_facility_kwh, 6),
            "saved_cost": _r(self.saved_cost, 6),
            "cost_basis": "facility" if self.pue is not None else "it",
            "n_fans": self.n_fans,
            "n_fans_unknown": self.n_fans_unknown,
        }


@dataclass(frozen=True, slots=True)
class TierSpan:
    tier: str
    from_ms: int
    to_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "from_ms": self.from_ms, "to_ms": self.to_ms}


@dataclass(frozen=True, slots=True)
class EnergyReport:
    """Energy and cost of the selection over [from_ms, to_ms) (whole minutes), grouped."""

    from_ms: int
    to_ms: int
    group: str
    entity: str
    timezone: str
    currency: str
    tiers: tuple[TierSpan, ...]
    total: GroupRow
    """The whole selection (entity `site`)."""
    facility_kwh: float | None
    facility_estimated_kwh: float | None
    facility_cost: float | None
    facility_source: str | None
    """`facility_meter` (the twin's facility_power_watts), `it_times_measured_pue`,
    `pdu_times_pue` or `it_times_pue` (the configured PUE), None: unknown."""
    pue: float | None
    pue_source: str | None
    """`measured` (facility over IT meters over the period), `configured`, None."""
    periods: tuple[PeriodRow, ...]
    optimisation: FanSaving | None
    rows: tuple[GroupRow, ...]

    @property
    def energy_kwh(self) -> float:
        return self.total.energy_kwh

    @property
    def estimated_kwh(self) -> float:
        return self.total.estimated_kwh

    @property
    def coverage(self) -> float | None:
        return self.total.coverage

    @property
    def cost(self) -> float:
        return self.total.cost

    @property
    def fan_kwh(self) -> float:
        return self.total.fan_kwh

    def to_dict(self) -> dict[str, Any]:
        total = self.total.to_dict()
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "from": iso(self.from_ms),
            "to": iso(self.to_ms),
            "group": self.group,
            "entity": self.entity,
            "timezone": self.timezone,
            "currency": self.currency,
            "tiers": [t.to_dict() for t in self.tiers],
            **{k: v for k, v in total.items() if k not in ("entity",)},
            "facility_kwh": _r(self.facility_kwh, 6),
            "facility_estimated_kwh": _r(self.facility_estimated_kwh, 6),
            "facility_cost": _r(self.facility_cost, 6),
            "facility_source": self.facility_source,
            "pue": _r(self.pue, 6),
            "pue_source": self.pue_source,
            "periods": [p.to_dict() for p in self.periods],
            "optimisation": None if self.optimisation is None else self.optimisation.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
        }
