"""Fault parameters: one pydantic model per fault kind, with its defaults and bounds.

The one place a fault's parameters are described: the twin validates every injection with the
kind's model when it schedules it (`FaultSpec.merge`), the control API runs the same check
before it sends anything, and `GET /api/v1/twin/faults` publishes each model's JSON schema.
Every number is finite and bounded, so a parameter can never push a fault's end past what an
int64 of milliseconds holds (or a loss window past what memory holds).

>>> LoadBurstParams.defaults()
{'utilization': 0.9, 'n_servers': 1, 'duration_s': 120.0}
>>> bounds_of(PduCapParams)
{'capacity_ratio': (0.0, 1.0), 'duration_s': (0.0, 100000000.0)}
>>> check_params(LoadBurstParams, {"duration_s": 1e308})
Traceback (most recent call last):
...
rackwatch.twin.fault_params.BadFaultParams: bad fault parameters for 'load_burst': \
duration_s: 1e+308 is outside (0.0, 100000000.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from rackwatch.errors import CommandRejected
from rackwatch.model.catalogue import METRICS

MAX_DURATION_S = 1e8
"""About 3 years: the longest planned fault (None means until repaired)."""
MAX_LOSS_WINDOW_S = 86_400.0
"""A telemetry-loss window is drawn in full when scheduled: at most a day of it."""
SENSOR_METRIC = "cpu_temperature_celsius"
_METRIC_NAMES: list[JsonValue] = [*sorted(METRICS)]
_EXCERPT = 40


class BadFaultParams(CommandRejected):
    """Parameters that do not fit the kind's model: `problems` holds (parameter, what is
    wrong) pairs, the parameter "" for a problem of several together."""

    def __init__(self, kind: str, problems: list[tuple[str, str]]) -> None:
        self.kind = kind
        self.problems = problems
        said = "; ".join(f"{name}: {why}" if name else why for name, why in problems)
        super().__init__(f"bad fault parameters for {kind!r}: {said}")


class FaultParams(BaseModel):
    """Parameters of one fault kind: unknown names refused, numbers finite and in bounds,
    no conversion from strings or booleans (strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: ClassVar[str]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every parameter at its default."""
        return cls.model_validate({}).model_dump()


def _duration(default: float | None, description: str = "How long it lasts.") -> Any:
    nullable = " Null: until repaired." if default is None else ""
    return Field(default, gt=0, le=MAX_DURATION_S, description=description + nullable)


def _metric() -> Any:
    return Field(
        SENSOR_METRIC,
        description="The sensor's metric; the entity must report it.",
        json_schema_extra={"enum": _METRIC_NAMES},
    )


class _SensorParams(FaultParams):
    metric: str = _metric()

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {_excerpt(metric)}; see docs/METRICS.md")
        return metric


class FanOffParams(FaultParams):
    kind = "fan_off"
    duration_s: float | None = _duration(None)


class FanDegradationParams(FaultParams):
    kind = "fan_degradation"
    step_ratio: float = Field(0.02, ge=1e-4, le=1.0, description="Speed lost every interval.")
    interval_s: float = Field(1800.0, ge=1.0, le=MAX_DURATION_S)
    off_below_ratio: float = Field(0.40, ge=0.0, le=0.99, description="Stops at or below it.")

    @model_validator(mode="after")
    def _ends_in_time(self) -> FanDegradationParams:
        if fan_degradation_duration_s(self.model_dump()) > MAX_DURATION_S:
            raise ValueError(
                f"the fan would take more than {MAX_DURATION_S:g} s to stop: "
                "raise step_ratio or shorten interval_s"
            )
        return self


class SensorDriftParams(_SensorParams):
    kind = "sensor_drift"
    slope_per_hour: float = Field(0.2, ge=-1e4, le=1e4, description="Units per hour.")
    duration_s: float | None = _duration(None)


class SensorStuckParams(_SensorParams):
    kind = "sensor_stuck"
    value: float | None = Field(
        None, ge=-1e9, le=1e9, description="The value repeated; null: the reading at the start."
    )
    duration_s: float | None = _duration(3600.0)


class SensorNullParams(_SensorParams):
    kind = "sensor_null"
    duration_s: float | None = _duration(600.0)


class CracDegradationParams(FaultParams):
    kind = "crac_degradation"
    capacity_ratio: float = Field(0.3, ge=0.05, le=1.0)
    cop_ratio: float = Field(0.75, ge=0.1, le=1.0)
    airflow_ratio: float = Field(0.8, ge=0.1, le=1.0)
    ramp_s: float = Field(1800.0, ge=0.0, le=MAX_DURATION_S)
    duration_s: float | None = _duration(14400.0)


class PduCapParams(FaultParams):
    kind = "pdu_cap"
    capacity_ratio: float = Field(0.3, ge=0.0, le=1.0)
    duration_s: float | None = _duration(1800.0)


class LoadBurstParams(FaultParams):
    kind = "load_burst"
    utilization: float = Field(0.9, ge=0.0, le=1.0, description="Utilisation floor.")
    n_servers: int = Field(1, ge=1, le=1_000_000, description="Servers of a rack or cluster.")
    duration_s: float | None = _duration(120.0)


class TelemetryLossParams(FaultParams):
    kind = "telemetry_loss"
    fraction: float = Field(0.2, ge=1e-6, le=1.0, description="Share of the series hit.")
    min_gap_s: float = Field(10.0, ge=0.0, le=1e6)
    max_gap_s: float = Field(30.0, ge=0.0, le=1e6)
    mean_interval_s: float = Field(60.0, ge=0.0, le=1e8)
    duration_s: float = Field(
        300.0, gt=0, le=MAX_LOSS_WINDOW_S, description="The window of intermittent loss."
    )

    @model_validator(mode="after")
    def _gaps_in_order(self) -> TelemetryLossParams:
        if self.max_gap_s < self.min_gap_s:
            raise ValueError(f"max_gap_s ({self.max_gap_s}) is below min_gap_s ({self.min_gap_s})")
        return self


class AirflowMisdistributionParams(FaultParams):
    kind = "airflow_misdistribution"
    factor: float = Field(5.0, ge=0.0, le=100.0, description="Recirculation multiplier.")
    duration_s: float | None = _duration(7200.0)


class DiskFailureParams(FaultParams):
    kind = "disk_failure"
    power_delta_watts: float = Field(-6.0, ge=-50.0, le=50.0)
    duration_s: float | None = _duration(None)


def fan_degradation_duration_s(params: Mapping[str, Any]) -> float:
    """Seconds until a wearing fan reaches `off_below_ratio` (then it stops)."""
    n = math.ceil((1.0 - float(params["off_below_ratio"])) / float(params["step_ratio"]) - 1e-9)
    return n * float(params["interval_s"])


def bounds_of(model: type[FaultParams]) -> dict[str, tuple[float | None, float | None]]:
    """[low, high] of each bounded numeric parameter (None: that side is open)."""
    found: dict[str, tuple[float | None, float | None]] = {}
    for name, info in model.model_fields.items():
        low: float | None = None
        high: float | None = None
        for bound in info.metadata:  # the numbers given to Field(ge=..., le=...)
            if isinstance(bound, Ge | Gt):
                low = float(cast(float, bound.ge if isinstance(bound, Ge) else bound.gt))
            elif isinstance(bound, Le | Lt):
                high = float(cast(float, bound.le if isinstance(bound, Le) else bound.lt))
        if low is not None or high is not None:
            found[name] = (low, high)
    return found


def check_params(model: type[FaultParams], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every parameter of the kind, `params` over the defaults, validated; BadFaultParams
    naming each bad parameter (its value quoted as a short excerpt)."""
    if params is not None and not isinstance(params, Mapping):
        why = f"params must be an object of parameters, got {_excerpt(params)}"
        raise BadFaultParams(model.kind, [("", why)])
    try:
        return model.model_validate(dict(params or {})).model_dump()
    except ValidationError as exc:
        problems = [_problem(model, err) for err in exc.errors(include_url=False)]
        raise BadFaultParams(model.kind, problems) from None


def _problem(model: type[FaultParams], err: Mapping[str, Any]) -> tuple[str, str]:
    name = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        takes = sorted(model.model_fields)
        return name[:_EXCERPT], f"the kind has no parameter {_excerpt(name)}; it takes {takes}"
    if err["type"] in _OUT_OF_BOUNDS and name in model.model_fields:
        low, high = bounds_of(model)[name]
        is_open = any(isinstance(b, Gt) for b in model.model_fields[name].metadata)
        return name, f"{_excerpt(err['input'])} is outside {'(' if is_open else '['}{low}, {high}]"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "value_error" or not name:
        return name, message
    return name, f"{message} (got {_excerpt(err.get('input'))})"


_OUT_OF_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _excerpt(value: Any) -> str:
    """A short repr: bad input is named, never echoed whole (as `api.params.excerpt`)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= _EXCERPT:
        return repr(text) if isinstance(value, str) else text
    cut = text[:_EXCERPT] + "…"
    return f"{repr(cut) if isinstance(value, str) else cut} ({len(text)} characters)"


FAULT_PARAMS: dict[str, type[FaultParams]] = {
    model.kind: model
    for model in (
        FanOffParams,
        FanDegradationParams,
        SensorDriftParams,
        SensorStuckParams,
        SensorNullParams,
        CracDegradationParams,
        PduCapParams,
        LoadBurstParams,
        TelemetryLossParams,
        AirflowMisdistributionParams,
        DiskFailureParams,
    )
}
"""Fault kind → its parameter model."""
