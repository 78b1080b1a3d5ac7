"""The GPU machines and their cards as arrays: what the newest values and the inventory say.

A card is an entity `<machine>/gpu<k>` (a real host's `host/<name>/gpu0`, the twin's
`c01/r01/s01/gpu0`) with GPU series, or a `kind: "gpu"` inventory item; its machine is the
path above it. A machine is in the fleet when it has at least one card.

Two steps, so that a request costs NumPy work and not a Python loop over every series:

- `fleet_layout(keys, ids)`: where each selected series goes (a card's or a machine's row, a
  metric's column). A Python pass over the series, done again only when the registry grows.
- `gather(layout, ts, value, inventory)`: the newest values scattered into those rows, the
  inventory's facts (cores, memory, GPU model and memory size) looked up per machine and card,
  and the cards the inventory lists that never sent a value added (their values unknown).

Sizes a series does not give are derived: a card's total is the inventory's or used + free,
its free memory total - used; a machine's free memory is `memory_available_bytes`, else its
total less `memory_used_bytes`. Unknown is NaN, never 0.

>>> keys = [("host/a/gpu0", "gpu_memory_free_bytes"), ("host/a", "cpu_utilization_ratio"),
...         ("c01/r01/s01", "cpu_utilization_ratio")]
>>> layout = fleet_layout(keys, np.arange(3))
>>> layout.machines, layout.cards
(('host/a',), ('host/a/gpu0',))
>>> fleet = gather(layout, np.array([5, 6, 7]), np.array([8e9, 0.25, 0.5]), {})
>>> fleet.card_free_bytes.tolist(), fleet.cpu_utilization.tolist(), fleet.last_seen_ms.tolist()
([8000000000.0], [0.25], [6])
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

CARD_METRICS: Final = (
    "gpu_memory_free_bytes",
    "gpu_memory_used_bytes",
    "gpu_utilization_ratio",
    "gpu_memory_utilization_ratio",
    "gpu_temperature_celsius",
)
MACHINE_METRICS: Final = (
    "cpu_utilization_ratio",
    "memory_available_bytes",
    "memory_used_bytes",
)
METRICS: Final = CARD_METRICS + MACHINE_METRICS
"""Every metric the recommendation reads."""

# Inventory attribute names, first found wins: the host collector's (`sources/host`) first,
# then names a declared or simulated GPU server may use (seed 004's static data).
CARD_TOTAL_KEYS: Final = (
    "memory_total_bytes",
    "memory_limit_bytes",
    "gpu_memory_limit_bytes",
    "gpu_memory_total_bytes",
)
CARD_MODEL_KEYS: Final = ("name", "model", "gpu_model", "gpu_type")
MACHINE_CARD_TOTAL_KEYS: Final = (
    "gpu_memory_limit_bytes",
    "gpu_memory_total_bytes",
    "gpu_memory_bytes",
)
"""On the machine's item: every card's size, where the cards' own items do not say."""
MACHINE_CARD_MODEL_KEYS: Final = ("gpu_model", "gpu_type", "gpu_name")
CORES_KEYS: Final = ("logical_cores", "cores", "cpu_cores", "n_cores", "cpu_count")
MEMORY_TOTAL_KEYS: Final = ("memory_total_bytes", "memory_limit_bytes")
CARD_COUNT_KEYS: Final = ("gpu_count", "gpu_num", "n_gpus")

_CARD = re.compile(r"^(?P<machine>.+)/gpu(?P<index>\d{1,6})$")
_MAX_SIZE_BYTES: Final = float(1 << 50)
"""1 PiB: above any machine or card; a larger inventory figure is a broken one."""
_MAX_COUNT: Final = 1 << 20


def card_of(entity: str) -> tuple[str, int] | None:
    """(machine, index) of a card's path, None for any other path.

    >>> card_of("host/dgx1/gpu3"), card_of("c01/r01/s01/gpu0"), card_of("host/dgx1/fan1")
    (('host/dgx1', 3), ('c01/r01/s01', 0), None)
    """
    found = _CARD.match(entity)
    return None if found is None else (found["machine"], int(found["index"]))


@dataclass(frozen=True, slots=True)
class FleetLayout:
    """Where each selected series goes: `ids[i]` is a card metric (`is_card[i]`) or a machine
    metric, of row `row[i]` and column `col[i]` (its index in CARD_METRICS or
    MACHINE_METRICS). Machines and cards are sorted by path (cards by machine, then index)."""

    machines: tuple[str, ...]
    cards: tuple[str, ...]
    card_machine: I32
    card_index: I64
    ids: I64
    is_card: npt.NDArray[np.bool_]
    row: I64
    col: I64


def fleet_layout(keys: Sequence[tuple[str, str]], ids: npt.NDArray[np.integer]) -> FleetLayout:
    """The layout of the series `ids`, whose (entity, metric) are `keys` (aligned). Series of
    other metrics, and machine series of machines without a card, are left out."""
    card_cols = {m: i for i, m in enumerate(CARD_METRICS)}
    machine_cols = {m: i for i, m in enumerate(MACHINE_METRICS)}
    cards: dict[str, tuple[str, int]] = {}
    for entity, metric in keys:
        if metric in card_cols and entity not in cards:
            found = card_of(entity)
            if found is not None:
                cards[entity] = found
    machines = tuple(sorted({machine for machine, _ in cards.values()}))
    machine_row = {m: i for i, m in enumerate(machines)}
    ordered = sorted(cards, key=lambda c: (cards[c][0], cards[c][1], c))
    card_row = {c: i for i, c in enumerate(ordered)}
    placed: list[tuple[int, bool, int, int]] = []  # (position in keys, is a card, row, col)
    for i, (entity, metric) in enumerate(keys):
        if metric in card_cols and entity in card_row:
            placed.append((i, True, card_row[entity], card_cols[metric]))
        elif metric in machine_cols and entity in machine_row:
            placed.append((i, False, machine_row[entity], machine_cols[metric]))
    keep, is_card, rows, cols = zip(*placed, strict=True) if placed else ((), (), (), ())
    return FleetLayout(
        machines=machines,
        cards=tuple(ordered),
        card_machine=np.array([machine_row[cards[c][0]] for c in ordered], dtype=np.int32),
        card_index=np.array([cards[c][1] for c in ordered], dtype=np.int64),
        ids=np.asarray(ids, dtype=np.int64)[np.array(keep, dtype=np.int64)],
        is_card=np.array(is_card, dtype=np.bool_),
        row=np.array(rows, dtype=np.int64),
        col=np.array(cols, dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every GPU machine (sorted by path) and card (by machine, then index); NaN: unknown.

    Per machine: `cpu_utilization` (0..1), `memory_available_bytes`, `memory_total_bytes`,
    `cores` (logical cores, from the inventory), `expected_cards` (the inventory's card count,
    -1 unknown) and `last_seen_ms` (its newest sample or its cards', -1 none). Per card: its
    machine's row, index, model, memory free/used/total, utilisation (0..1), temperature."""

    machines: tuple[str, ...]
    cpu_utilization: F64
    memory_available_bytes: F64
    memory_total_bytes: F64
    cores: F64
    expected_cards: I64
    last_seen_ms: I64
    cards: tuple[str, ...]
    card_machine: I32
    card_index: I64
    card_model: tuple[str | None, ...]
    card_free_bytes: F64
    card_used_bytes: F64
    card_total_bytes: F64
    card_utilization: F64
    card_temperature_celsius: F64

    @property
    def n_cards(self) -> I64:
        """Cards per machine."""
        return np.bincount(self.card_machine, minlength=len(self.machines)).astype(np.int64)


def gather(
    layout: FleetLayout,
    ts: npt.NDArray[np.int64],
    value: F64,
    inventory: Mapping[str, Mapping[str, Any]],
) -> Fleet:
    """The fleet from the newest values (`ts`, `value`: tables indexed by series id, as the
    live state's; ts < 0, or an id past their end, is a series without a sample) and the
    inventory (path -> attributes; a card is recognised by its path). Cost: NumPy over the
    series, then one dict lookup per machine and card."""
    cards, card_machine_name, card_index = _cards_with_inventory(layout, inventory)
    machines = tuple(sorted(set(card_machine_name)))
    machine_row = {m: i for i, m in enumerate(machines)}
    card_row = {c: i for i, c in enumerate(cards)}
    n_m, n_c = len(machines), len(cards)

    # Layout rows -> rows here (the inventory may add machines and cards between them).
    to_card = np.array([card_row[c] for c in layout.cards], dtype=np.int64)
    to_machine = np.array([machine_row[m] for m in layout.machines], dtype=np.int64)
    inside = layout.ids < len(ts)
    ts_of = np.full(len(layout.ids), -1, dtype=np.int64)
    value_of = np.full(len(layout.ids), np.nan)
    ts_of[inside] = ts[layout.ids[inside]]
    value_of[inside] = value[layout.ids[inside]]
    ts, value = ts_of, value_of
    has = ts >= 0
    card_values = np.full((n_c, len(CARD_METRICS)), np.nan)
    machine_values = np.full((n_m, len(MACHINE_METRICS)), np.nan)
    last_seen = np.full(n_m, -1, dtype=np.int64)
    on_card = layout.is_card & has
    on_machine = ~layout.is_card & has
    card_rows = to_card[layout.row[on_card]]
    machine_rows = to_machine[layout.row[on_machine]]
    card_values[card_rows, layout.col[on_card]] = value[on_card]
    machine_values[machine_rows, layout.col[on_machine]] = value[on_machine]
    card_machine = np.array([machine_row[m] for m in card_machine_name], dtype=np.int32)
    np.maximum.at(last_seen, machine_rows, ts[on_machine])
    np.maximum.at(last_seen, card_machine[card_rows], ts[on_card])

    free, used, util, mem_ratio, temp = (card_values[:, k] for k in range(len(CARD_METRICS)))
    total = np.array([_size(inventory.get(c), CARD_TOTAL_KEYS) for c in cards], dtype=np.float64)
    machine_card_total = np.array(
        [_size(inventory.get(m), MACHINE_CARD_TOTAL_KEYS) for m in machines], dtype=np.float64
    )
    total = np.where(np.isnan(total), machine_card_total[card_machine], total)
    total = np.where(np.isnan(total), used + free, total)
    # A ratio alone still gives the use once the size is known (a collector without memory.used).
    used = np.where(np.isnan(used), mem_ratio * total, used)
    free = np.where(np.isnan(free), total - used, free)
    used = np.where(np.isnan(used), total - free, used)

    cpu, available, machine_used = (machine_values[:, k] for k in range(len(MACHINE_METRICS)))
    memory_total = np.array(
        [_size(inventory.get(m), MEMORY_TOTAL_KEYS) for m in machines], dtype=np.float64
    )
    memory_total = np.where(np.isnan(memory_total), machine_used + available, memory_total)
    available = np.where(np.isnan(available), memory_total - machine_used, available)
    return Fleet(
        machines=machines,
        cpu_utilization=np.clip(cpu, 0.0, 1.0),
        memory_available_bytes=np.maximum(available, 0.0),
        memory_total_bytes=memory_total,
        cores=np.array(
            [_or(_count(inventory.get(m), CORES_KEYS), math.nan) for m in machines],
            dtype=np.float64,
        ),
        expected_cards=np.array(
            [_or(_count(inventory.get(m), CARD_COUNT_KEYS), -1) for m in machines],
            dtype=np.int64,
        ),
        last_seen_ms=last_seen,
        cards=cards,
        card_machine=card_machine,
        card_index=card_index,
        card_model=tuple(
            _model(inventory.get(c), inventory.get(m))
            for c, m in zip(cards, card_machine_name, strict=True)
        ),
        card_free_bytes=np.maximum(free, 0.0),
        card_used_bytes=np.maximum(used, 0.0),
        card_total_bytes=total,
        card_utilization=np.clip(util, 0.0, 1.0),
        card_temperature_celsius=temp,
    )


def _cards_with_inventory(
    layout: FleetLayout, inventory: Mapping[str, Mapping[str, Any]]
) -> tuple[tuple[str, ...], list[str], I64]:
    """The layout's cards and the inventory's, sorted by (machine, index, path)."""
    found = {
        c: (layout.machines[int(m)], int(k))
        for c, m, k in zip(layout.cards, layout.card_machine, layout.card_index, strict=True)
    }
    for path in inventory:
        if path not in found:
            card = card_of(path)
            if card is not None:
                found[path] = card
    ordered = sorted(found, key=lambda c: (found[c][0], found[c][1], c))
    return (
        tuple(ordered),
        [found[c][0] for c in ordered],
        np.array([found[c][1] for c in ordered], dtype=np.int64),
    )


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _size(attributes: Mapping[str, Any] | None, keys: Sequence[str]) -> float:
    """The first of `keys` that holds a size in bytes (0 < size <= 1 PiB), else NaN."""
    for key in keys:
        size = _number((attributes or {}).get(key))
        if size is not None and 0 < size <= _MAX_SIZE_BYTES:
            return size
    return math.nan


def _count(attributes: Mapping[str, Any] | None, keys: Sequence[str]) -> int | None:
    """The first of `keys` that holds a whole count (1..2^20), else None."""
    for key in keys:
        count = _number((attributes or {}).get(key))
        if count is not None and count == int(count) and 1 <= count <= _MAX_COUNT:
            return int(count)
    return None


def _or(count: int | None, default: float) -> float:
    return default if count is None else count


def _model(card: Mapping[str, Any] | None, machine: Mapping[str, Any] | None) -> str | None:
    for attributes, keys in ((card, CARD_MODEL_KEYS), (machine, MACHINE_CARD_MODEL_KEYS)):
        for key in keys:
            text = (attributes or {}).get(key)
            if isinstance(text, str) and text.strip():
                return text.strip()[:64]
    return None
