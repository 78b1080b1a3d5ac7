"""What the surfaces (REST, /metrics, the command line) need of the energy accounting: the
tariff (prices, currency, the site's time zone), the configured PUE and the live accountant.
Built by the wiring from `[site]` and `[energy]`; a test builds it by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

from rackwatch.engine.energy.accounting import check_pue
from rackwatch.engine.energy.live import LiveEnergy
from rackwatch.engine.energy.tariff import Tariff


@dataclass(frozen=True, slots=True)
class EnergyConfig:
    tariff: Tariff = field(default_factory=lambda: Tariff(0.20))
    pue: float | None = None
    """The configured PUE (1.0..3.0) of a site without a facility meter."""
    live: LiveEnergy | None = None
    """The live accountant of `rackwatch run` (None: not running; `GET /energy/live` is 503)."""

    def __post_init__(self) -> None:
        check_pue(self.pue)
