"""The energy routes' answers (`GET /energy`, `GET /energy/live`): their models, for the OpenAPI
schema. The documents themselves are `EnergyReport.to_dict()` and `LiveTotals.to_dict()`
(engine/energy), which `rackwatch energy` prints too; docs/ENERGY.md explains each figure."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EnergyRowOut(BaseModel):
    entity: str = Field(examples=["c01/r01"], description="The server, rack, room, or `site`.")
    energy_kwh: float = Field(description="Measured IT energy: gaps contribute nothing.")
    estimated_kwh: float = Field(description="Gaps filled at each series' mean power.")
    covered_s: float = Field(description="Series-seconds with readings.")
    gap_s: float = Field(description="Series-seconds without (missing buckets, NULL readings).")
    coverage: float | None = Field(description="covered / (covered + gap); null: no series.")
    cost: float
    estimated_cost: float
    fan_kwh: float
    n_series: int
    metered_kwh: float | None = Field(
        description="Its own meter: a rack's PDU total, a room's it_power_watts; null: none."
    )
    metered_estimated_kwh: float | None
    metered_coverage: float | None


class EnergyPeriodOut(BaseModel):
    name: str = Field(examples=["peak", "base"])
    price_per_kwh: float
    energy_kwh: float
    cost: float


class FanSavingOut(BaseModel):
    fan_kwh: float
    always_high_kwh: float = Field(description="The same fans at high over the same time.")
    saved_kwh: float
    saving_ratio: float | None
    pue: float | None
    saved_facility_kwh: float | None
    saved_cost: float
    cost_basis: str = Field(description="`facility` (saved x PUE) or `it` (no PUE known).")
    n_fans: int
    n_fans_unknown: int


class TierSpanOut(BaseModel):
    tier: str = Field(examples=["1m", "1h"])
    from_ms: int
    to_ms: int


class EnergyOut(BaseModel):
    from_ms: int
    to_ms: int
    from_: str = Field(alias="from")
    to: str
    group: str
    entity: str
    timezone: str
    currency: str
    tiers: list[TierSpanOut]
    energy_kwh: float
    estimated_kwh: float
    covered_s: float
    gap_s: float
    coverage: float | None
    cost: float
    estimated_cost: float
    fan_kwh: float
    n_series: int
    metered_kwh: float | None
    metered_estimated_kwh: float | None
    metered_coverage: float | None
    facility_kwh: float | None
    facility_estimated_kwh: float | None
    facility_cost: float | None
    facility_source: str | None
    pue: float | None
    pue_source: str | None
    periods: list[EnergyPeriodOut]
    optimisation: FanSavingOut | None
    rows: list[EnergyRowOut]


class EnergyLiveOut(BaseModel):
    timezone: str
    currency: str
    since_ms: int | None = Field(description="The first energy sample counted.")
    newest_ms: int | None
    day_from_ms: int | None = Field(description="Today, in the site's time zone: its start.")
    day_to_ms: int | None
    it_kwh_today: float
    cost_today: float
    facility_kwh_today: float | None
    facility_cost_today: float | None
    fan_kwh_today: float
    pue: float | None = Field(description="Today's facility over metered IT, or configured.")
    pue_source: str | None
    it_joules: float = Field(description="IT energy since the server started.")
    facility_joules: float | None
    fan_joules: float
    groups: dict[str, dict[str, float]] | None = Field(
        None, description="With `detail=true`: joules since start per server, rack, room, site."
    )
