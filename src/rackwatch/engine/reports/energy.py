"""The report's energy section: the energy accounting's figures for the period (kWh, cost,
PUE), beside the machines' own energy the report integrates from `power_watts`.

`account_energy` is the one place a report calls the accounting (engine/energy/); the
wiring hands the tariff and PUE of the settings' `[energy]` section in `EnergyOptions`.
Without them, or when the accounting fails, the section says so in its note and keeps the
machines' energy (`it_energy_kwh`) only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rackwatch.engine.reports.content import EnergySection
from rackwatch.store.base import Store

log = logging.getLogger(__name__)

Accountant = Callable[[Store, int, int], Mapping[str, Any]]
"""(store, start_ms, end_ms) -> the accounting's document (`EnergyReport.to_dict()`)."""


@dataclass(frozen=True, slots=True)
class EnergyOptions:
    tariff: Any
    """An `engine.energy.tariff.Tariff`."""
    pue: float | None = None


def account_energy(options: EnergyOptions) -> Accountant:
    """The accounting of the whole site under `options`' tariff, as a document."""

    def run(store: Store, start_ms: int, end_ms: int) -> Mapping[str, Any]:
        from rackwatch.engine.energy.accounting import account  # its own, heavier module

        found = account(
            store, start_ms, end_ms, group="site", tariff=options.tariff, pue=options.pue
        )
        document: Mapping[str, Any] = found.to_dict()
        return document

    return run


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def energy_section(
    store: Store,
    start_ms: int,
    end_ms: int,
    it_energy_kwh: float | None,
    accountant: Accountant | None,
) -> EnergySection:
    """The section; never raises for the accounting's sake (a report without its cost is
    still a report)."""
    if accountant is None:
        return EnergySection(
            available=False,
            energy_kwh=it_energy_kwh,
            cost=None,
            currency=None,
            pue=None,
            it_energy_kwh=it_energy_kwh,
            detail=None,
            note="no tariff is configured ([energy] in the settings): energy_kwh is the "
            "machines' own power integrated over the period, and there is no cost",
        )
    try:
        found = dict(accountant(store, start_ms, end_ms))
    except Exception as exc:
        log.warning("report: the energy accounting failed", exc_info=True)
        return EnergySection(
            available=False,
            energy_kwh=it_energy_kwh,
            cost=None,
            currency=None,
            pue=None,
            it_energy_kwh=it_energy_kwh,
            detail=None,
            note=f"the energy accounting failed ({exc}); energy_kwh is the machines' own",
        )
    return EnergySection(
        available=True,
        energy_kwh=_number(found.get("energy_kwh")),
        cost=_number(found.get("cost")),
        currency=str(found["currency"]) if found.get("currency") is not None else None,
        pue=_number(found.get("pue")),
        it_energy_kwh=it_energy_kwh,
        detail=found,
        note=None,
    )
