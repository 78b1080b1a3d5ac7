"""One PDU read once through its profile: each outlet's power, current, label and state, and
the PDU's total.

`read_pdu` asks the agent (a walk per column where it can, else a GET per outlet) and
`interpret` (pure) turns the raw values into a `PduReading`. A value that is missing (no such
object or instance), malformed (not a number, a state the profile does not list) or out of
its profile's [min, max] is left out of the reading, named in the outlet's `problems` and
counted: the other values and outlets are kept. The total is the profile's total OID when it
answers well, else the sum of the outlets when every outlet's power was read (`total_is_sum`).

Outlets: 1..`outlet_count` when given, else every outlet number found in the columns walked
(the agent's own table). SNMP v1 has no GETBULK: with an outlet count it GETs each outlet's
OIDs; without one it walks with GETNEXT.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rackwatch.sources.snmp.client import (
    BULK_REPETITIONS,
    SnmpClient,
    SnmpError,
    SnmpTarget,
    Value,
)
from rackwatch.sources.snmp.profiles import (
    OUTLET,
    LabelField,
    NumberField,
    OutletNumber,
    Profile,
    StateField,
)

MAX_OUTLETS = 512
Problem = Literal["missing", "malformed", "out_of_range"]


@dataclass(frozen=True, slots=True)
class OutletReading:
    number: int
    label: str | None = None
    is_on: bool | None = None
    watts: float | None = None
    amperes: float | None = None
    problems: tuple[str, ...] = ()
    """What could not be read, one line each (`power: out of range (…)`)."""


@dataclass(slots=True)
class PduReading:
    ts_ms: int
    outlets: list[OutletReading]
    total_watts: float | None = None
    total_is_sum: bool = False
    problems: list[str] = field(default_factory=list)
    """The PDU's own (its total)."""
    n_missing: int = 0
    n_malformed: int = 0
    n_out_of_range: int = 0

    @property
    def n_bad(self) -> int:
        return self.n_missing + self.n_malformed + self.n_out_of_range

    def as_dict(self) -> dict[str, object]:
        """For `rackwatch pdu read --format json`."""
        return {
            "ts_ms": self.ts_ms,
            "total_watts": self.total_watts,
            "total_is_sum": self.total_is_sum,
            "outlets": [
                {
                    "number": o.number,
                    "name": o.label,
                    "state": None if o.is_on is None else ("on" if o.is_on else "off"),
                    "watts": o.watts,
                    "amperes": o.amperes,
                    "problems": list(o.problems),
                }
                for o in self.outlets
            ],
            "problems": self.problems,
        }


def split_template(template: str) -> tuple[str, str]:
    """The column's prefix and the suffix after the outlet number.

    >>> split_template("1.3.6.1.4.1.13742.6.5.4.3.1.4.1.{outlet}.5")
    ('1.3.6.1.4.1.13742.6.5.4.3.1.4.1', '.5')
    """
    before, after = template.split(OUTLET)
    return before.rstrip("."), after


def column_values(template: str, walked: Mapping[str, Value]) -> dict[int, Value]:
    """A walked subtree as outlet number -> value, for the OIDs the template matches.

    >>> column_values("1.9.{outlet}.5", {"1.9.1.5": 10, "1.9.1.1": 3, "1.9.2.5": 12})
    {1: 10, 2: 12}
    """
    prefix, suffix = split_template(template)
    start = len(prefix) + 1
    found: dict[int, Value] = {}
    for oid, value in walked.items():
        if not oid.startswith(prefix + ".") or not oid.endswith(suffix):
            continue
        middle = oid[start : len(oid) - len(suffix)] if suffix else oid[start:]
        if middle.isdigit() and 0 < int(middle) <= MAX_OUTLETS:
            found[int(middle)] = value
    return found


def _number(raw: Value, spec: NumberField) -> tuple[float | None, Problem | None, str]:
    if raw is None:
        return None, "missing", "no such object"
    if isinstance(raw, int):
        value = raw * spec.scale
    else:
        try:
            value = float(raw.strip()) * spec.scale
        except ValueError:
            return None, "malformed", f"not a number: {raw[:40]!r}"
    if not math.isfinite(value):
        return None, "malformed", f"not finite: {str(raw)[:40]!r}"
    value = round(value, 6)  # 6 x 0.1 is 0.6, not 0.6000000000000001
    if not spec.min <= value <= spec.max:
        return None, "out_of_range", f"out of range: {value:g} not in [{spec.min:g}, {spec.max:g}]"
    return value, None, ""


def _state(raw: Value, spec: StateField) -> tuple[bool | None, Problem | None, str]:
    if raw is None:
        return None, "missing", "no such object"
    if not isinstance(raw, int):
        return None, "malformed", f"not an integer: {raw[:40]!r}"
    is_on = spec.is_on(raw)
    if is_on is None:
        on, off = list(spec.on), list(spec.off)
        return None, "malformed", f"value {raw} is neither on {on} nor off {off}"
    return is_on, None, ""


def interpret(
    profile: Profile,
    numbers: Sequence[int],
    columns: Mapping[str, Mapping[int, Value]],
    total_raw: Value | Literal[False] = False,
    ts_ms: int = 0,
) -> PduReading:
    """The reading of outlets `numbers` from their raw values by field (`power`, `current`,
    `label`, `state`: outlet -> raw value; an outlet absent from a column is missing) and the
    raw total (False: the profile has none). An optional column (current, state) that has no
    value for any outlet is a feature the PDU lacks: left out, no problem. Pure.

    >>> from rackwatch.sources.snmp.profiles import load_profile
    >>> r = interpret(load_profile("apc-rpdu2"), [1, 2],
    ...               {"power": {1: 120, 2: "x"}, "current": {1: 5, 2: 7},
    ...                "label": {1: "web1", 2: "web2"}, "state": {1: 2, 2: 1}}, 30)
    >>> r.outlets[0]
    OutletReading(number=1, label='web1', is_on=True, watts=120.0, amperes=0.5, problems=())
    >>> r.outlets[1].watts, r.outlets[1].problems, r.total_watts, r.n_malformed
    (None, ("power: not a number: 'x'",), 300.0, 1)
    """
    reading = PduReading(ts_ms=ts_ms, outlets=[])
    counts = {"missing": 0, "malformed": 0, "out_of_range": 0}
    # an optional column the PDU has for no outlet at all is a feature it lacks (a metered
    # PDU that cannot switch has no state), not a value missing outlet after outlet
    lacks = {
        key
        for key in ("current", "state")
        if not any(v is not None for v in columns.get(key, {}).values())
    }
    for number in numbers:
        problems: list[str] = []
        values: dict[str, float | None] = {}
        for key in ("power", "current"):
            spec: OutletNumber | None = getattr(profile, key)
            if spec is None or key in lacks:
                values[key] = None
                continue
            value, problem, why = _number(columns.get(key, {}).get(number), spec)
            values[key] = value
            if problem is not None:
                counts[problem] += 1
                problems.append(f"{key}: {why}")
        is_on = None
        if profile.state is not None and "state" not in lacks:
            is_on, problem, why = _state(columns.get("state", {}).get(number), profile.state)
            if problem is not None:
                counts[problem] += 1
                problems.append(f"state: {why}")
        label = _label(columns.get("label", {}).get(number), profile.label)
        reading.outlets.append(
            OutletReading(
                number=number,
                label=label,
                is_on=is_on,
                watts=values["power"],
                amperes=values["current"],
                problems=tuple(problems),
            )
        )
    if profile.total is not None and total_raw is not False:
        total, problem, why = _number(total_raw, profile.total)
        if problem is None:
            reading.total_watts = total
        else:
            counts[problem] += 1
            reading.problems.append(f"total: {why}")
    if reading.total_watts is None and reading.outlets:
        powers = [o.watts for o in reading.outlets]
        if all(p is not None for p in powers):
            reading.total_watts = float(sum(p for p in powers if p is not None))
            reading.total_is_sum = True
    reading.n_missing = counts["missing"]
    reading.n_malformed = counts["malformed"]
    reading.n_out_of_range = counts["out_of_range"]
    return reading


def _label(raw: Value, spec: LabelField | None) -> str | None:
    if spec is None or raw is None:
        return None  # a name is a nicety: its absence is no problem worth an event
    text = str(raw).strip()
    return text[:64] or None


async def read_pdu(
    client: SnmpClient,
    target: SnmpTarget,
    profile: Profile,
    outlet_count: int | None = None,
    clock: float | None = None,
    expected_outlets: int | None = None,
) -> PduReading:
    """Read one PDU once; `profile` already resolved (`Profile.resolve`). Raises SnmpError
    (SnmpTimeout) when the agent does not answer, or when it has no outlet under the
    profile's OIDs. `expected_outlets` (how many the last read found) sizes the walks."""
    ts_ms = round((time.time() if clock is None else clock) * 1000)
    fields: dict[str, OutletNumber | LabelField | StateField] = {
        key: spec
        for key in ("power", "current", "label", "state")
        if (spec := getattr(profile, key)) is not None
    }
    columns: dict[str, dict[int, Value]] = {}
    if target.uses_bulk or outlet_count is None:
        walked: dict[str, dict[str, Value]] = {}
        rows = outlet_count or expected_outlets
        for key, spec in fields.items():
            prefix, suffix = split_template(spec.oid)
            if prefix not in walked:  # Raritan: current and power share one subtree
                # a plain column holds a row per outlet; a subtree with a suffix, more
                repetitions = rows + 1 if rows and not suffix else BULK_REPETITIONS
                walked[prefix] = await client.walk(target, prefix, repetitions)
            columns[key] = column_values(spec.oid, walked[prefix])
    else:
        numbers = range(1, outlet_count + 1)
        oids = {
            (key, n): spec.oid.replace(OUTLET, str(n))
            for key, spec in fields.items()
            for n in numbers
        }
        got = await client.get(target, list(oids.values()))
        for (key, n), oid in oids.items():
            columns.setdefault(key, {})[n] = got.get(oid)
    if outlet_count is not None:
        outlets = list(range(1, outlet_count + 1))
    else:
        outlets = sorted({n for column in columns.values() for n in column})
    if not outlets:
        raise SnmpError(
            f"SNMP agent {target.address} answers but has no outlet under "
            f"{split_template(profile.power.oid)[0]}: check the profile ({profile.name}) "
            "or give the outlet count"
        )
    total_raw: Value | Literal[False] = False
    if profile.total is not None:
        total_raw = (await client.get(target, [profile.total.oid])).get(profile.total.oid)
    return interpret(profile, outlets, columns, total_raw, ts_ms)
