"""The live accountant: energy as it arrives, for the dashboard's tile, `GET /energy/live` and
the `/metrics` counters.

`LiveEnergy.update(batch)` is a live-state listener (`LiveState.listen`): it sees every
telemetry batch once, on the event loop, and costs a sort and a few NumPy passes over the
batch's energy rows (no Python loop per sample). Each power sample holds until the series'
next one, as everywhere in rackwatch (integrate.py), with the store's gap rule: an interval
longer than 1.5 x the series' previous one is a gap, of which one usual interval is counted
(the sample covered that much); a series' first interval counts when it is at most
`first_gap_ms` (10 minutes). A NULL reading holds nothing. Samples older than the series'
newest are left to the store (`account` has them).

"Today" is the local calendar day (the tariff's time zone) of the newest energy sample: the
twin's clock, or the wall clock for real machines. An interval is counted in the day it
starts in, at the price of its start; the day's figures start over at midnight. The running
PUE is today's facility energy over today's metered IT energy (the twin's room meters), else
the configured PUE.

After each batch a `LiveTotals` snapshot replaces the last one whole, so readers in other
threads (the /metrics exposition) always see one consistent state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.energy.integrate import J_PER_KWH
from rackwatch.engine.energy.members import ROLE_CODES, ROLE_OF_METRIC, SITE, Membership, Role
from rackwatch.engine.energy.tariff import Tariff
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.model.entity import parent

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
HOLD_FACTOR = 1.5
FIRST_GAP_MS = 600_000
GROUPS = ("server", "rack", "room")
"""The groups with one counter per entity (the site has one in all)."""
_NONE = -1
_SERVER, _GPU, _FAN = ROLE_CODES[Role.SERVER], ROLE_CODES[Role.GPU], ROLE_CODES[Role.FAN]
_IT, _FACILITY = ROLE_CODES[Role.IT], ROLE_CODES[Role.FACILITY]


@dataclass(frozen=True, slots=True)
class LiveTotals:
    """One consistent state of the live accountant."""

    timezone: str
    currency: str
    since_ms: int | None = None
    """The first energy sample counted (the accountant's start)."""
    newest_ms: int | None = None
    day_from_ms: int | None = None
    day_to_ms: int | None = None
    it_kwh_today: float = 0.0
    cost_today: float = 0.0
    facility_kwh_today: float | None = None
    facility_cost_today: float | None = None
    fan_kwh_today: float = 0.0
    pue: float | None = None
    pue_source: str | None = None
    it_joules: float = 0.0
    facility_joules: float | None = None
    fan_joules: float = 0.0
    joules: F64 = field(default_factory=lambda: np.zeros(0))
    """Per slot (energy series), since start."""
    roles: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    groups: dict[str, tuple[I32, tuple[str, ...]]] = field(default_factory=dict)
    """Group -> (index of each slot's entity, -1: none; the entities' names)."""

    def counters(self) -> list[tuple[str, str, float]]:
        """(group, entity, joules since start) of the IT energy: every server and host with
        power, every rack, room, and the site; bounded by the number of power series."""
        n = min(len(self.joules), len(self.roles))
        joules = self.joules[:n]
        it = (self.roles[:n] == _SERVER) | (self.roles[:n] == _GPU)
        out: list[tuple[str, str, float]] = []
        for group in ("server", "rack", "room"):
            index, names = self.groups.get(group, (np.zeros(0, np.int32), ()))
            index = index[:n]
            use = it & (index >= 0)
            sums = np.bincount(index[use], weights=joules[use], minlength=len(names))
            seen = np.bincount(index[use], minlength=len(names)) > 0
            out += [(group, names[i], float(sums[i])) for i in np.flatnonzero(seen).tolist()]
        out.append((SITE, SITE, float(joules[it].sum())))
        return out

    def to_dict(self, *, detail: bool = True) -> dict[str, Any]:
        """The document of `GET /energy/live`; `groups` (per entity) only with `detail`."""

        def r(value: float | None, digits: int = 6) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "timezone": self.timezone,
            "currency": self.currency,
            "since_ms": self.since_ms,
            "newest_ms": self.newest_ms,
            "day_from_ms": self.day_from_ms,
            "day_to_ms": self.day_to_ms,
            "it_kwh_today": r(self.it_kwh_today),
            "cost_today": r(self.cost_today),
            "facility_kwh_today": r(self.facility_kwh_today),
            "facility_cost_today": r(self.facility_cost_today),
            "fan_kwh_today": r(self.fan_kwh_today),
            "pue": r(self.pue),
            "pue_source": self.pue_source,
            "it_joules": r(self.it_joules, 3),
            "facility_joules": r(self.facility_joules, 3),
            "fan_joules": r(self.fan_joules, 3),
            "groups": self._groups_dict() if detail else None,
        }

    def _groups_dict(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {g: {} for g in (*GROUPS, SITE)}
        for group, entity, joules in self.counters():
            out[group][entity] = round(joules, 3)
        return out


class LiveEnergy:
    """Joules per server, rack, room and site since start; today's kWh, cost and PUE.

    `registry` names the series (new ones are classified as they appear); `membership` says
    where machines belong (members.py; built from the inventory at start); `pue` is the
    configured PUE for a site without a facility meter.
    """

    def __init__(
        self,
        registry: SeriesRegistry,
        tariff: Tariff,
        *,
        pue: float | None = None,
        membership: Membership | None = None,
        first_gap_ms: int = FIRST_GAP_MS,
    ) -> None:
        self.registry = registry
        self.tariff = tariff
        self.pue = pue
        self.membership = membership or Membership()
        self.first_gap_ms = first_gap_ms
        self._known = 0
        self._slot = np.full(0, -1, dtype=np.int64)
        """Series id -> slot (energy series only), -1 for the rest."""
        self._roles = np.zeros(0, dtype=np.int8)
        self._last_ts = np.zeros(0, dtype=np.int64)
        self._last_value = np.zeros(0)
        self._last_dt = np.zeros(0, dtype=np.int64)
        self._joules = np.zeros(0)
        self._today_j = np.zeros(0)
        self._today_cost = np.zeros(0)
        self._members: list[str] = []
        self._gpus_of: dict[str, list[int]] = {}
        self._powered: set[str] = set()
        self._group_index: dict[str, I32] = {g: np.zeros(0, np.int32) for g in GROUPS}
        self._group_names: dict[str, list[str]] = {g: [] for g in GROUPS}
        self._group_at: dict[str, dict[str, int]] = {g: {} for g in GROUPS}
        self._groups: dict[str, tuple[I32, tuple[str, ...]]] = {}
        self._since: int | None = None
        self._newest: int | None = None
        self._day: tuple[int, int] | None = None
        self._totals = LiveTotals(tariff.timezone, tariff.currency)

    def totals(self) -> LiveTotals:
        """The newest snapshot (safe from any thread)."""
        return self._totals

    def update(self, batch: Batch) -> None:
        """Count one telemetry batch (a `LiveState` listener)."""
        if len(batch) == 0:
            return
        if len(self.registry) > self._known:
            self._follow_registry()
        ids = batch.series.astype(np.int64)
        inside = ids < len(self._slot)
        slot = np.where(inside, self._slot[np.where(inside, ids, 0)], -1)
        rows = slot >= 0
        if not rows.any():
            return
        self._count(slot[rows], batch.ts[rows].astype(np.int64), batch.value[rows])
        self._publish()

    # ------------------------------------------------------------------ the integral

    def _count(self, s: I64, t: I64, v: F64) -> None:
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        repeat = np.zeros(len(s), dtype=bool)
        repeat[1:] = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
        keep = (t > self._last_ts[s]) & ~repeat  # older samples are the store's business
        s, t, v = s[keep], t[keep], v[keep]
        if len(s) == 0:
            return
        first = np.ones(len(s), dtype=bool)
        first[1:] = s[1:] != s[:-1]
        prev_t = np.empty_like(t)
        prev_t[1:] = t[:-1]
        prev_t[first] = self._last_ts[s[first]]
        prev_v = np.empty_like(v)
        prev_v[1:] = v[:-1]
        prev_v[first] = self._last_value[s[first]]
        known = prev_t >= 0
        dt = np.where(known, t - prev_t, 0)
        ref = np.empty_like(dt)
        ref[1:] = dt[:-1]
        ref[first] = self._last_dt[s[first]]
        held = np.where(
            ref > 0,
            np.where(dt <= HOLD_FACTOR * ref, dt, ref),
            np.where(dt <= self.first_gap_ms, dt, 0),
        )
        valid = known & np.isfinite(prev_v)
        joules = np.where(valid, np.maximum(prev_v, 0.0) * held / 1000.0, 0.0)
        last = np.ones(len(s), dtype=bool)
        last[:-1] = s[:-1] != s[1:]
        self._last_ts[s[last]] = t[last]
        self._last_value[s[last]] = v[last]
        self._last_dt[s[last]] = dt[last]

        newest = int(t.max())
        if self._since is None:
            self._since = int(t.min())
        self._newest = newest if self._newest is None else max(self._newest, newest)
        if self._day is None or self._newest >= self._day[1]:
            self._day = self.tariff.day_bounds(self._newest)
            self._today_j[:] = 0.0
            self._today_cost[:] = 0.0
        n = len(self._joules)
        self._joules += np.bincount(s, weights=joules, minlength=n)
        # an interval is the day's, and priced, by its start: when its sample was read
        today = known & (prev_t >= self._day[0])
        if today.any():
            j = joules[today]
            cost = j * self.tariff.price_at(prev_t[today]) / J_PER_KWH
            self._today_j += np.bincount(s[today], weights=j, minlength=n)
            self._today_cost += np.bincount(s[today], weights=cost, minlength=n)

    def _publish(self) -> None:
        roles = self._roles
        it = (roles == _SERVER) | (roles == _GPU)
        fan = roles == _FAN
        seen = self._last_ts >= 0  # a meter only counts once it has sent something
        facility = (roles == _FACILITY) & seen
        meter = (roles == _IT) & seen
        it_today = float(self._today_j[it].sum())
        cost_today = float(self._today_cost[it].sum())
        has_meter = bool(facility.any())
        f_today = float(self._today_j[facility].sum())
        m_today = float(self._today_j[meter].sum())
        pue: float | None
        if has_meter and f_today > 0 and m_today > 0:
            pue, source = f_today / m_today, "measured"
        elif self.pue is not None:
            pue, source = self.pue, "configured"
        else:
            pue, source = None, None
        if has_meter:
            facility_kwh: float | None = f_today / J_PER_KWH
            facility_cost: float | None = float(self._today_cost[facility].sum())
            facility_j: float | None = float(self._joules[facility].sum())
        elif pue is not None:
            facility_kwh, facility_cost = it_today / J_PER_KWH * pue, cost_today * pue
            facility_j = float(self._joules[it].sum()) * pue
        else:
            facility_kwh = facility_cost = facility_j = None
        day = self._day
        self._totals = LiveTotals(
            timezone=self.tariff.timezone,
            currency=self.tariff.currency,
            since_ms=self._since,
            newest_ms=self._newest,
            day_from_ms=None if day is None else day[0],
            day_to_ms=None if day is None else day[1],
            it_kwh_today=it_today / J_PER_KWH,
            cost_today=cost_today,
            facility_kwh_today=facility_kwh,
            facility_cost_today=facility_cost,
            fan_kwh_today=float(self._today_j[fan].sum()) / J_PER_KWH,
            pue=pue,
            pue_source=source,
            it_joules=float(self._joules[it].sum()),
            facility_joules=facility_j,
            fan_joules=float(self._joules[fan].sum()),
            joules=self._joules.copy(),
            roles=self._roles,
            groups=dict(self._groups),
        )

    # ------------------------------------------------------------------ the series

    def _follow_registry(self) -> None:
        """Classify the series registered since last time; arrays are replaced, not changed
        in place, so a published snapshot keeps its own."""
        n_old = self._known
        new_keys = [self.registry.key(i) for i in range(n_old, len(self.registry))]
        self._known = len(self.registry)
        self._slot = np.concatenate([self._slot, np.full(len(new_keys), -1, dtype=np.int64)])
        self._powered |= {k.entity for k in new_keys if k.metric == "power_watts"}
        added_roles: list[int] = []
        added_index: dict[str, list[int]] = {g: [] for g in GROUPS}
        for offset, key in enumerate(new_keys):
            role = ROLE_OF_METRIC.get(key.metric)
            member = parent(key.entity) if role is Role.GPU else key.entity
            if role is None or member is None:
                continue
            slot = len(self._members)
            self._slot[n_old + offset] = slot
            self._members.append(member)
            if role is Role.GPU:
                self._gpus_of.setdefault(member, []).append(slot)
            added_roles.append(ROLE_CODES[role])
            for g in GROUPS:
                added_index[g].append(self._index_in(g, role, member))
        roles = np.concatenate([self._roles, np.array(added_roles, dtype=np.int8)])
        for host in self._powered & set(self._gpus_of):  # its power_watts includes its GPUs
            roles[self._gpus_of[host]] = _NONE
        self._roles = roles
        k = len(added_roles)
        for g in GROUPS:
            self._group_index[g] = np.concatenate(
                [self._group_index[g], np.array(added_index[g], dtype=np.int32)]
            )
            self._groups[g] = (self._group_index[g], tuple(self._group_names[g]))
        self._last_ts = np.concatenate([self._last_ts, np.full(k, -1, dtype=np.int64)])
        self._last_value = np.concatenate([self._last_value, np.full(k, np.nan)])
        self._last_dt = np.concatenate([self._last_dt, np.zeros(k, dtype=np.int64)])
        self._joules = np.concatenate([self._joules, np.zeros(k)])
        self._today_j = np.concatenate([self._today_j, np.zeros(k)])
        self._today_cost = np.concatenate([self._today_cost, np.zeros(k)])

    def _index_in(self, group: str, role: Role, member: str) -> int:
        key = self.membership.group_of(role, member, group)
        if key is None:
            return -1
        at = self._group_at[group]
        found = at.get(key)
        if found is None:
            found = at[key] = len(self._group_names[group])
            self._group_names[group].append(key)
        return found
