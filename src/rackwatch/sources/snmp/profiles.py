"""Vendor profiles: which OIDs of a PDU hold each outlet's power, current, label and state and
the PDU's total, how to scale them, and how states map. A profile is data (a TOML file), never
code: the shipped ones are in `profiles/` beside this module (`apc-rpdu2`, `raritan-px`,
`generic`), and a user points `profile` at a file of their own to add a vendor.

A file has a `name`, a `description` and one table per field:

- `[power]` (required), `[current]`, `[total]`: `oid`, `scale` (the raw integer times
  `scale` gives watts or amperes: 0.1 for tenths of amperes, 10 for hundredths of kW),
  `min` and `max` (bounds of a plausible value, after scaling: outside, the value is refused);
- `[label]`: `oid` of the outlet's name (a string);
- `[state]`: `oid`, and the raw values meaning `on` and `off` (lists of integers).

An outlet field's `oid` is a template holding `{outlet}` (the outlet number) once, e.g.
`1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{outlet}`; `total` names one OID. A template may start with
`{root}`, filled with the PDU's `root_oid` (the generic profile: `{root}.{outlet}`).

>>> p = load_profile("apc-rpdu2")
>>> p.power.oid, p.current.scale if p.current else None, p.state.on if p.state else None
('1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{outlet}', 0.1, (2,))
>>> load_profile("generic").resolve("1.3.6.1.4.1.99.1").power.oid
'1.3.6.1.4.1.99.1.{outlet}'
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rackwatch.errors import ConfigError

PROFILES_DIR = Path(__file__).parent / "profiles"
OUTLET = "{outlet}"
ROOT = "{root}"
_OID = re.compile(r"^\d+(\.\d+)+$")
MAX_PROFILE_BYTES = 64 * 1024


MAX_ARCS = 128
MAX_ARC = 2**32 - 1


def _encodable(body: str) -> bool:
    """Whether a dotted-number OID can be BER-encoded: first arc 0-2, second at most 39 under
    0 and 1, every arc a 32-bit number, at most MAX_ARCS of them."""
    if not _OID.match(body):
        return False
    arcs = [int(a) for a in body.split(".")]
    return (
        len(arcs) <= MAX_ARCS
        and arcs[0] <= 2
        and (arcs[0] == 2 or arcs[1] <= 39)
        and all(a <= MAX_ARC for a in arcs)
    )


class ProfileError(ConfigError):
    """A profile that cannot be found or read; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(template: str, *, per_outlet: bool) -> str:
    """An OID template: dotted numbers, `{outlet}` once for an outlet field (never for the
    total), `{root}` only at the start."""
    body = template.strip().lstrip(".")
    if body.count(ROOT) > 1 or (ROOT in body and not body.startswith(ROOT)):
        raise ValueError(f"{ROOT} may only start the OID, in {template!r}")
    n_outlet = body.count(OUTLET)
    if per_outlet and n_outlet != 1:
        raise ValueError(f"an outlet OID holds {OUTLET} exactly once, not in {template!r}")
    if not per_outlet and n_outlet:
        raise ValueError(f"the total is one OID, without {OUTLET}: {template!r}")
    concrete = body.replace(ROOT, "1.3").replace(OUTLET, "1")
    if not _encodable(concrete):
        raise ValueError(f"not a numeric OID template (digits and dots): {template!r}")
    return body


def check_oid(oid: str) -> str:
    """A numeric OID (`1.3.6.1...`), a leading dot dropped; ValueError otherwise.

    >>> check_oid(".1.3.6.1.4.1.318")
    '1.3.6.1.4.1.318'
    """
    body = oid.strip().lstrip(".")
    if not _encodable(body):
        raise ValueError(f"not a numeric OID (digits and dots, e.g. 1.3.6.1.4.1.318): {oid!r}")
    return body


class NumberField(_Strict):
    """A measured value: raw integer (or decimal string) times `scale`, within [min, max]."""

    oid: str
    scale: float = 1.0
    min: float = 0.0
    max: float = 1e6

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        for what, value in (("scale", self.scale), ("min", self.min), ("max", self.max)):
            if not math.isfinite(value) or abs(value) > 1e9:
                raise ValueError(f"{what} must be a finite number within ±1e9, not {value}")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class OutletNumber(NumberField):
    @field_validator("oid")
    @classmethod
    def _template(cls, oid: str) -> str:
        return _check_template(oid, per_outlet=True)


class TotalNumber(NumberField):
    @field_validator("oid")
    @classmethod
    def _template(cls, oid: str) -> str:
        return _check_template(oid, per_outlet=False)


class LabelField(_Strict):
    oid: str

    @field_validator("oid")
    @classmethod
    def _template(cls, oid: str) -> str:
        return _check_template(oid, per_outlet=True)


class StateField(_Strict):
    oid: str
    on: tuple[int, ...] = Field(min_length=1, max_length=16)
    off: tuple[int, ...] = Field(min_length=1, max_length=16)

    @field_validator("oid")
    @classmethod
    def _template(cls, oid: str) -> str:
        return _check_template(oid, per_outlet=True)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = set(self.on) & set(self.off)
        if both:
            raise ValueError(f"values {sorted(both)} are both on and off")
        return self

    def is_on(self, raw: int) -> bool | None:
        """True (on), False (off), None (a value the profile does not know)."""
        if raw in self.on:
            return True
        if raw in self.off:
            return False
        return None


class Profile(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    power: OutletNumber
    current: OutletNumber | None = None
    label: LabelField | None = None
    state: StateField | None = None
    total: TotalNumber | None = None

    @property
    def needs_root(self) -> bool:
        """Whether its OIDs start at the PDU's `root_oid` (the generic profile)."""
        return any(ROOT in oid for oid in self.oids())

    def oids(self) -> list[str]:
        fields = (self.power, self.current, self.label, self.state, self.total)
        return [f.oid for f in fields if f is not None]

    def resolve(self, root_oid: str | None = None) -> Profile:
        """The profile with `{root}` filled in; ProfileError when it needs a root and none
        was given. A root given to a profile that has no `{root}` is ignored."""
        if not self.needs_root:
            return self
        if root_oid is None:
            raise ProfileError(
                f"profile {self.name!r} reads under a root OID: give root_oid (--root-oid)"
            )
        try:
            root = check_oid(root_oid)
        except ValueError as e:
            raise ProfileError(f"root_oid: {e}") from None
        update = {}
        for key in ("power", "current", "label", "state", "total"):
            field = getattr(self, key)
            if field is not None and ROOT in field.oid:
                update[key] = field.model_copy(update={"oid": field.oid.replace(ROOT, root)})
        return self.model_copy(update=update)


def shipped_profiles() -> list[str]:
    """The names of the profiles that come with rackwatch."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(ref: str) -> Profile:
    """A shipped profile by name, or a profile file by path (a name with `/` or `.toml`).
    Raises ProfileError naming the file and the field."""
    if "/" in ref or ref.endswith(".toml"):
        path = Path(ref).expanduser()
    else:
        path = PROFILES_DIR / f"{ref}.toml"
        if not path.is_file():
            raise ProfileError(
                f"no PDU profile named {ref!r}: use one of {', '.join(shipped_profiles())} "
                "or the path of a profile file"
            )
    return load_profile_file(path)


def load_profile_file(path: Path) -> Profile:
    try:
        if path.exists() and not path.is_file():
            raise ProfileError(f"profile file {path}: not a regular file")
        with path.open("rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile file {path}: over {MAX_PROFILE_BYTES} bytes")
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as e:
        raise ProfileError(f"profile file {path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"profile file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"profile file {path}: not valid TOML ({e})") from None
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ProfileError(f"profile file {path}: {problems}") from None
