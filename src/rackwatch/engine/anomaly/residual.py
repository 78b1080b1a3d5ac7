"""Physics-aware scores: a device's target signal against what its other signals explain.

A CPU's temperature follows its utilisation, its power, the air at its intake and the airflow
through the chassis. `ResidualModel` learns that relation per device from stored history: a
linear regression on each input as read and low-pass filtered (`lag_halflife` samples, for
the heat sink's lag), each device's coefficients shrunk toward the pooled fit of all devices,
solved for all devices at once with batched normal equations (NumPy); rows whose residual is
an outlier are dropped and the fit is redone once.

`ResidualScorer` then scores live batches: at each target sample the inputs are the newest
readings of the same device at or before it (at most `max_input_age_ms` old), the residual
`target - prediction` divided by the device's residual sigma from the fit is `z`, and the
score is the larger of a deviation score of |z| and a CUSUM of z against 0: a fixed
reference, so a sensor drifting +0.2 °C/h or a cooling fault the inputs do not explain keeps
scoring as long as it lasts, unlike a baseline that adapts. Refit the model on fresh history
to follow slow legitimate change (the later retraining schedule's job).

>>> from rackwatch.model import SeriesRegistry
>>> from rackwatch.sources.twin import TwinSource
>>> from rackwatch.twin import Twin
>>> registry = SeriesRegistry()
>>> source = TwinSource(Twin("small", seed=3), registry)
>>> history, _ = source.read(240)
>>> model = ResidualModel.fit(history, registry)
>>> len(model.entities), bool(np.all(model.sigma > 0))
(5, True)
>>> scores = ResidualScorer(model, registry).score(source.read(60)[0])
>>> len(scores), bool(np.nanmax(scores.score) <= 1.0), scores.changes[:1]
(300, True, ())
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.engine.anomaly import scores as scoring
from rackwatch.engine.anomaly.scan import (
    F64,
    I64,
    alpha,
    at,
    ew_average,
    ew_scan,
    group_rows,
    last_index,
)
from rackwatch.engine.anomaly.scores import I32, Detector, Scores, ZScoring
from rackwatch.engine.anomaly.state import StateTable
from rackwatch.engine.anomaly.stream import MAX_CELLS
from rackwatch.model import entity as entity_path
from rackwatch.model.records import Batch
from rackwatch.model.series import SeriesRegistry

MAD_TO_SIGMA_NORMAL = 1.4826
"""A normal distribution's standard deviation over its median absolute deviation."""
_UNSEEN, _IGNORED, _TARGET = -2, -1, 0
GPU_CARD_METRICS = frozenset({"gpu_power_watts", "gpu_utilization_ratio"})
"""A series of one of these on `<machine>/<card>` marks the machine as a GPU host."""
_MIN_AIRFLOW = 1e-3
"""Airflow below this (a sensor reading 0) is taken as this in the heatsink term: finite, and
far beyond any history's range, so the term is clipped like the airflow itself."""


@dataclass(frozen=True, slots=True)
class ResidualSpec:
    """What a residual model explains, with what, and how it is fitted."""

    target: str = "cpu_temperature_celsius"
    inputs: tuple[str, ...] = (
        "cpu_utilization_ratio",
        "power_watts",
        "inlet_temperature_celsius",
        "airflow_cfm",
    )
    lag_halflife: float = 24.0
    """Half-life (target samples) of the filtered copy of each input: 2 min at 5 s."""
    max_input_age_ms: int = 60_000
    """An input reading older than this at a target sample is not used (the row is skipped)."""
    shrink: float = 0.1
    """Pull of each device's coefficients toward the pooled fit, per row and per unit of the
    pooled feature variance: an input must vary at least this share of its usual range for
    a device's own response to it to count."""
    ridge: float = 1e-3
    """Penalty of the pooled fit's coefficients toward 0, on the same scale."""
    min_rows: int = 60
    """Complete rows a device needs to be fitted."""
    trim: float = 4.0
    """Rows with |residual| above this many sigmas are dropped before the second fit."""
    bounded: tuple[str, ...] = ("airflow_cfm",)
    """Inputs the fit is not trusted beyond the history's range with (clipped to it, plus
    `range_margin` of it): a CPU's heat rises linearly with power and inlet, but as airflow
    to the power -0.8, so an airflow never seen (a fan off) is not explained away."""
    range_margin: float = 0.1
    sink_power: str = "power_watts"
    """The heatsink term, one more input P·Q^-e: a CPU's rise above its intake is its power
    times a thermal resistance that falls with airflow as Q^-0.8 (turbulent convection over
    fins), a product no sum of the inputs can follow when the fans change speed. `sink_power`
    and `sink_airflow` name two of `inputs` (an empty `sink_power`: no such term)."""
    sink_airflow: str = "airflow_cfm"
    sink_exponent: float = 0.8

    def __post_init__(self) -> None:
        if not self.inputs or self.target in self.inputs:
            raise ValueError("a residual model wants inputs, and the target is not one of them")
        if self.lag_halflife < 1.0 or self.min_rows < 2 or self.max_input_age_ms < 0:
            raise ValueError("want lag_halflife >= 1, min_rows >= 2, max_input_age_ms >= 0")
        if self.sink_power and not {self.sink_power, self.sink_airflow} <= set(self.inputs):
            raise ValueError("the heatsink term's power and airflow must be among the inputs")
        if not 0.0 <= self.sink_exponent <= 4.0:
            raise ValueError("want 0 <= sink_exponent <= 4")

    @property
    def n_terms(self) -> int:
        """Inputs plus the heatsink term: each is a feature as read and one filtered."""
        return len(self.inputs) + 2 * bool(self.sink_power)

    @property
    def n_features(self) -> int:
        return 2 * self.n_terms

    def bounded_features(self) -> npt.NDArray[np.bool_]:
        """Which features are clipped to the history's range: the bounded inputs', and the
        heatsink term's when its airflow is bounded."""
        terms = [m in self.bounded for m in self.inputs]
        if self.sink_power:
            terms += [self.sink_airflow in self.bounded] * 2
        return np.array(terms * 2, dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class ResidualConfig(ZScoring):
    """How residuals are scored (z is the residual over the device's fitted sigma); the
    CUSUM's reference is 0, fixed: `cusum_k` is the bias of the fit that is tolerated."""

    warmup: int = 30
    """Target samples (with all inputs) before a device is scored: the filters settle."""
    drift_halflife: float = 360.0
    """Half-life (target samples: 30 min at 5 s) of the drift level, the average z over the
    samples whose conditions the device's own history covers."""
    drift_on: float = 3.0
    """A drift starts when the level's size reaches this many sigmas ..."""
    drift_off: float = 1.0
    """... and ends below this."""
    drift_margin: float = 0.1
    """Conditions count as covered within the device's history range widened by this share
    of it on each side."""
    drift_min_weight: float = 0.5
    """The level counts once its average holds this much weight (about one half-life of
    covered samples)."""

    def __post_init__(self) -> None:
        super(ResidualConfig, self).__post_init__()
        if not 0.0 < self.drift_off < self.drift_on or self.drift_halflife < 1.0:
            raise ValueError("want 0 < drift_off < drift_on and drift_halflife >= 1")
        if not 0.0 <= self.drift_margin <= 1.0 or not 0.0 < self.drift_min_weight < 1.0:
            raise ValueError("want drift margins in [0, 1] and 0 < drift_min_weight < 1")


@dataclass(frozen=True, slots=True, eq=False)
class ResidualModel:
    """Fitted coefficients per device (`entities[d]`):
    prediction = intercept + clip(features, low, high) @ coef.

    `sigma` is the robust standard deviation of the fit's residuals (at least half the
    target's resolution). Plain arrays: save them with `np.savez`, rebuild with the
    constructor.
    """

    spec: ResidualSpec
    entities: tuple[str, ...]
    coef: F64
    intercept: F64
    sigma: F64
    n_rows: I64
    low: F64
    """Each bounded feature's smallest value in the history (all devices), less a margin,
    -inf for the others ..."""
    high: F64
    """... and its largest plus the margin (inf): features are clipped to [low, high]."""
    device_low: F64 | None = None
    """(devices, features): each device's own smallest value of each feature in the rows it
    was fitted on, and ..."""
    device_high: F64 | None = None
    """... its largest: the conditions the fit has seen on that device (the drift level
    counts only samples inside them). None: unknown (a model saved before they were kept),
    no sample counts until the next fit."""

    @classmethod
    def fit(
        cls, history: Batch, registry: SeriesRegistry, spec: ResidualSpec | None = None
    ) -> ResidualModel:
        """Fit every device that has the target and all inputs in `history` (rows of any
        order, e.g. a store query's). Devices with fewer than `min_rows` complete rows are
        left out. Cost: one pass of the feature builder, then O(rows * features²)."""
        spec = spec or ResidualSpec()
        rows = _Features(spec, registry).build(history)
        return cls.fit_rows(spec, rows.entities, rows.device, rows.target, rows.features)

    @classmethod
    def fit_rows(
        cls,
        spec: ResidualSpec,
        entities: tuple[str, ...],
        device: I64,
        target: F64,
        features: F64,
    ) -> ResidualModel:
        """Fit from prepared rows: `device[i]` indexes `entities`, `features` is (rows,
        2 * inputs) as the scorer builds them, rows of a device in time order. Rows with a NaN
        are skipped. Memory: a few copies of the rows, never a padded grid."""
        valid = np.isfinite(target) & np.all(np.isfinite(features), axis=1)
        order = np.argsort(device[valid], kind="stable")
        y, x = target[valid][order], features[valid][order]
        devices, group = np.unique(device[valid][order], return_inverse=True)
        n_dev = len(devices)
        keep = np.ones(len(y), dtype=np.bool_)
        fit = _fit(x, y, group, n_dev, keep, spec)
        residual = y - fit.intercept[group] - np.einsum("np,np->n", x, fit.coef[group])
        keep = ~(np.abs(residual) > spec.trim * fit.sigma[group])
        fit = _fit(x, y, group, n_dev, keep, spec)
        n_rows = np.bincount(group, weights=keep, minlength=n_dev).astype(np.int64)
        step = np.abs(np.diff(y))
        step = np.where((group[1:] == group[:-1]) & (step > 0), step, np.inf)
        resolution = np.full(n_dev, np.inf)
        np.minimum.at(resolution, group[1:], step)
        resolution = np.where(np.isfinite(resolution), resolution, 0.0)
        floor = np.fmax(0.5 * resolution, 1e-9 * np.abs(fit.intercept) + 1e-300)
        chosen = n_rows >= spec.min_rows
        bounded = spec.bounded_features()
        low, high = np.full(spec.n_features, -np.inf), np.full(spec.n_features, np.inf)
        if keep.any():
            seen_low, seen_high = x[keep].min(axis=0), x[keep].max(axis=0)
            margin = spec.range_margin * (seen_high - seen_low)
            low = np.where(bounded, seen_low - margin, low)
            high = np.where(bounded, seen_high + margin, high)
        device_low, device_high = _device_ranges(x, group, n_dev, keep)
        return cls(
            spec,
            tuple(entities[int(d)] for d in devices[chosen]),
            fit.coef[chosen],
            fit.intercept[chosen],
            np.fmax(fit.sigma, floor)[chosen],
            n_rows[chosen],
            low,
            high,
            device_low[chosen],
            device_high[chosen],
        )

    def covered(self, device: I64, features: F64, margin: float) -> npt.NDArray[np.bool_]:
        """Whether each row's filtered features lie within its device's own history range,
        widened on each side by `margin` of that range."""
        if self.device_low is None or self.device_high is None or not len(self.entities):
            return np.zeros(len(device), dtype=np.bool_)
        half = self.spec.n_terms
        low, high = self.device_low[device, half:], self.device_high[device, half:]
        with np.errstate(invalid="ignore"):
            pad = margin * (high - low)
            lagged = features[:, half:]
            return np.asarray(np.all((lagged >= low - pad) & (lagged <= high + pad), axis=1))

    def predict(self, device: I64, features: F64) -> F64:
        """Prediction for rows of `features` (rows, 2 * inputs) of devices `device`, the
        bounded inputs clipped to the range the history covered."""
        inside = np.clip(features, self.low, self.high)
        return np.asarray(self.intercept[device] + np.sum(inside * self.coef[device], axis=1))

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The model as plain arrays of numbers and strings (nothing that needs pickle), for
        `np.savez`: `entities`, `coef`, `intercept`, `sigma`, `n_rows`, `low`, `high`, and
        each field of the spec as `spec_<name>`. `from_arrays` rebuilds it."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "entities": np.array(self.entities, dtype=np.str_).reshape(len(self.entities)),
            "coef": self.coef,
            "intercept": self.intercept,
            "sigma": self.sigma,
            "n_rows": self.n_rows,
            "low": self.low,
            "high": self.high,
        }
        if self.device_low is not None and self.device_high is not None:
            arrays["device_low"], arrays["device_high"] = self.device_low, self.device_high
        for f in fields(ResidualSpec):
            value = getattr(self.spec, f.name)
            if isinstance(value, tuple):
                arrays[_SPEC + f.name] = np.array(value, dtype=np.str_).reshape(len(value))
            else:
                arrays[_SPEC + f.name] = np.array(value)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> ResidualModel:
        """Rebuild a model from `to_arrays`' arrays (e.g. `np.load(path, allow_pickle=False)`),
        checked: every array present with its dtype and shape, the numbers finite, the sigmas
        positive, the bounds ordered. Raises ValueError saying what is wrong (a file that was
        truncated, edited or written by something else); extra arrays are ignored."""
        spec = ResidualSpec(
            **{f.name: _spec_field(arrays, f.name, f.default) for f in fields(ResidualSpec)}
        )
        entities_arr = _array(arrays, "entities", "U", 1)
        entities = tuple(str(e) for e in entities_arr.tolist())
        if len(set(entities)) != len(entities):
            raise ValueError("model arrays: an entity appears twice in 'entities'")
        n, p = len(entities), spec.n_features
        coef = _floats(arrays, "coef", (n, p))
        intercept = _floats(arrays, "intercept", (n,))
        sigma = _floats(arrays, "sigma", (n,))
        low = _floats(arrays, "low", (p,), infinite=True)
        high = _floats(arrays, "high", (p,), infinite=True)
        n_rows = _array(arrays, "n_rows", "iu", 1)
        if n_rows.shape != (n,) or bool(np.any(n_rows < 0)):
            raise ValueError(f"model arrays: 'n_rows' must be {n} counts >= 0")
        if not bool(np.all(sigma > 0)):
            raise ValueError("model arrays: every 'sigma' must be positive")
        if not bool(np.all(low <= high)):
            raise ValueError("model arrays: 'low' must not exceed 'high'")
        device_low = device_high = None
        if "device_low" in arrays or "device_high" in arrays:
            device_low = _floats(arrays, "device_low", (n, p), infinite=True)
            device_high = _floats(arrays, "device_high", (n, p), infinite=True)
        return cls(
            spec,
            entities,
            coef,
            intercept,
            sigma,
            n_rows.astype(np.int64),
            low,
            high,
            device_low,
            device_high,
        )


_SPEC = "spec_"
"""Prefix of the spec's fields among `ResidualModel.to_arrays`' arrays."""


def _array(
    arrays: Mapping[str, npt.NDArray[Any]], name: str, kinds: str, ndim: int
) -> npt.NDArray[Any]:
    """`arrays[name]`, checked to have a dtype of one of `kinds` and `ndim` dimensions."""
    if name not in arrays:
        raise ValueError(f"model arrays: {name!r} is missing")
    arr = np.asarray(arrays[name])
    if arr.dtype.kind not in kinds or arr.ndim != ndim:
        raise ValueError(
            f"model arrays: {name!r} is {arr.dtype} with {arr.ndim} dimension(s), "
            f"expected kind {kinds!r} with {ndim}"
        )
    return arr


def _floats(
    arrays: Mapping[str, npt.NDArray[Any]],
    name: str,
    shape: tuple[int, ...],
    *,
    infinite: bool = False,
) -> F64:
    """`arrays[name]` as float64 of `shape`, finite (or, with `infinite`, at least not NaN)."""
    arr = _array(arrays, name, "fiu", len(shape)).astype(np.float64)
    if arr.shape != shape:
        raise ValueError(f"model arrays: {name!r} has shape {arr.shape}, expected {shape}")
    bad = np.isnan(arr) if infinite else ~np.isfinite(arr)
    if bool(np.any(bad)):
        raise ValueError(f"model arrays: {name!r} holds NaN or infinite values")
    return arr


def _spec_field(arrays: Mapping[str, npt.NDArray[Any]], name: str, default: object) -> Any:
    """One field of a `ResidualSpec` from its array, of the type of the field's default."""
    key = _SPEC + name
    if isinstance(default, tuple):
        return tuple(str(v) for v in _array(arrays, key, "U", 1).tolist())
    if isinstance(default, str):
        return str(_array(arrays, key, "U", 0)[()])
    if isinstance(default, int):
        return int(_array(arrays, key, "iu", 0)[()])
    value = float(_array(arrays, key, "fiu", 0)[()])
    if not np.isfinite(value):
        raise ValueError(f"model arrays: {key!r} is not a finite number")
    return value


@dataclass(frozen=True, slots=True)
class _Fit:
    coef: F64
    intercept: F64
    sigma: F64


def _fit(
    x: F64, y: F64, group: I64, n_groups: int, keep: npt.NDArray[np.bool_], spec: ResidualSpec
) -> _Fit:
    """Per-device least squares over rows `x` (rows, features) of devices `group`, each
    device's coefficients shrunk toward the pooled fit of all devices: a device whose inputs
    barely moved in the history (no load burst, say) borrows the others' response instead of
    guessing it. Sums per device are bincounts, one feature pair at a time."""
    p = x.shape[1]
    weight = keep.astype(np.float64)

    def per_device(values: F64) -> F64:
        return np.bincount(group, weights=values * weight, minlength=n_groups).astype(np.float64)

    n = per_device(np.ones(len(y)))
    n_safe = np.maximum(n, 1.0)
    mean_x = np.stack([per_device(x[:, j]) for j in range(p)], axis=1) / n_safe[:, None]
    mean_y = per_device(y) / n_safe
    xc = x - mean_x[group]
    yc = y - mean_y[group]
    gram = np.empty((n_groups, p, p))
    for a in range(p):
        for b in range(a, p):
            gram[:, a, b] = gram[:, b, a] = per_device(xc[:, a] * xc[:, b])
    moment = np.stack([per_device(xc[:, j] * yc) for j in range(p)], axis=1)
    total = max(float(n.sum()), 1.0)
    variance = np.diagonal(gram.sum(axis=0)) / total
    variance = np.where(variance > 0, variance, 1.0)
    pooled = np.linalg.solve(
        gram.sum(axis=0) + spec.ridge * total * np.diag(variance), moment.sum(axis=0)
    )
    prior = spec.shrink * n_safe[:, None] * variance
    coef = np.linalg.solve(
        gram + prior[:, :, None] * np.eye(p), (moment + prior * pooled)[:, :, None]
    )[:, :, 0]
    residual = np.where(keep, yc - np.einsum("np,np->n", xc, coef[group]), np.nan)
    centre = _grouped_median(residual, group, n_groups)
    spread = _grouped_median(np.abs(residual - centre[group]), group, n_groups)
    sigma = np.where(np.isfinite(spread), MAD_TO_SIGMA_NORMAL * spread, np.inf)
    intercept = np.asarray(mean_y - np.sum(coef * mean_x, axis=1), dtype=np.float64)
    return _Fit(np.asarray(coef, dtype=np.float64), intercept, sigma.astype(np.float64))


def _device_ranges(
    x: F64, group: I64, n_groups: int, keep: npt.NDArray[np.bool_]
) -> tuple[F64, F64]:
    """Each group's smallest and largest kept value of each feature (rows sorted by group;
    inf and -inf for a group with none kept)."""
    low = np.full((n_groups, x.shape[1]), np.inf)
    high = np.full((n_groups, x.shape[1]), -np.inf)
    if not len(x):
        return low, high
    starts = np.searchsorted(group, np.arange(n_groups))
    has_rows = starts < len(group)
    at = starts[has_rows]
    low[has_rows] = np.minimum.reduceat(np.where(keep[:, None], x, np.inf), at, axis=0)
    high[has_rows] = np.maximum.reduceat(np.where(keep[:, None], x, -np.inf), at, axis=0)
    return low, high


def _grouped_median(values: F64, group: I64, n_groups: int) -> F64:
    """Median of the non-NaN values of each group (NaN for a group with none)."""
    order = np.lexsort((values, group))  # NaN sorts last within its group
    ordered = values[order]
    starts = np.searchsorted(group[order], np.arange(n_groups))
    count = np.bincount(group, weights=np.isfinite(values), minlength=n_groups).astype(np.int64)
    lo = starts + np.maximum(count - 1, 0) // 2
    hi = starts + count // 2
    middle = 0.5 * (
        ordered[np.minimum(lo, len(values) - 1)] + ordered[np.minimum(hi, len(values) - 1)]
    )
    return np.where(count > 0, middle, np.nan)


@dataclass(frozen=True, slots=True)
class FeatureRows:
    """Target samples with their features, sorted by device then time: `device[i]` indexes
    `entities`, `row[i]` is the sample's row in the batch given to `_Features.build`,
    `valid[i]` says the target and every input are known, `seen[i]` counts the device's valid
    rows before this one (since the builder started)."""

    entities: tuple[str, ...]
    device: I64
    row: I64
    ts: I64
    target: F64
    features: F64
    valid: npt.NDArray[np.bool_]
    seen: I64


def _no_rows(entities: tuple[str, ...], n_features: int) -> FeatureRows:
    none = np.zeros(0, dtype=np.int64)
    return FeatureRows(
        entities,
        none,
        none,
        none,
        np.zeros(0),
        np.zeros((0, n_features)),
        np.zeros(0, dtype=np.bool_),
        none,
    )


class _Features:
    """Streaming feature builder: as-of input readings and their filtered copies per device.

    Series are matched to devices by entity through the registry, once per new id. Memory:
    about 40 bytes per device and input."""

    def __init__(self, spec: ResidualSpec, registry: SeriesRegistry) -> None:
        self.spec = spec
        self.registry = registry
        self.role = np.zeros(0, dtype=np.int64)
        self.device_of = np.zeros(0, dtype=np.int64)
        self.devices: dict[str, int] = {}
        self.gpu_hosts: set[str] = set()
        fields: dict[str, tuple[type[np.generic], Any]] = {"n": (np.int64, 0)}
        fields["lp_w"] = (np.float64, 0.0)
        for j in range(len(spec.inputs)):
            fields[f"in{j}"] = (np.float64, np.nan)
            fields[f"in{j}_ts"] = (np.int64, 0)
        for j in range(spec.n_terms):
            fields[f"lp{j}"] = (np.float64, 0.0)
        self.state = StateTable(fields)

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(self.devices)

    def _map(self, series: I32) -> None:
        top = int(series.max(initial=-1)) + 1
        if top > len(self.role):
            grow = top - len(self.role)
            self.role = np.concatenate([self.role, np.full(grow, _UNSEEN, np.int64)])
            self.device_of = np.concatenate([self.device_of, np.full(grow, -1, np.int64)])
        roles = {self.spec.target: _TARGET} | {m: j + 1 for j, m in enumerate(self.spec.inputs)}
        unseen = np.unique(series[self.role[series] == _UNSEEN]).tolist()
        self._find_gpu_hosts(unseen)
        for sid in unseen:
            role = None
            if sid < len(self.registry):
                key = self.registry.key(sid)
                role = None if key.entity in self.gpu_hosts else roles.get(key.metric)
            if role is None:
                self.role[sid] = _IGNORED
                continue
            self.role[sid] = role
            self.device_of[sid] = self.devices.setdefault(key.entity, len(self.devices))
        self.state.ensure(len(self.devices))

    def _find_gpu_hosts(self, unseen: list[int]) -> None:
        """Machines with GPU cards are left out: their power includes the cards', which do
        not heat the CPU, and the CPU's own power is not measured (a job starting on the
        cards would read as the CPU running cold). Their CPU temperature keeps the
        per-series detectors. A card seen late un-maps the machine's series already mapped."""
        found = set()
        for sid in unseen:
            if sid < len(self.registry):
                key = self.registry.key(sid)
                host = entity_path.parent(key.entity)
                if key.metric in GPU_CARD_METRICS and host is not None:
                    found.add(host)
        for host in found - self.gpu_hosts:
            self.gpu_hosts.add(host)
            device = self.devices.get(host)
            if device is not None:
                self.role[(self.device_of == device) & (self.role >= 0)] = _IGNORED

    def build(self, batch: Batch) -> FeatureRows:
        """Features at each target sample of `batch`, learning the inputs as it goes."""
        self._map(batch.series)
        role = self.role[batch.series]
        picked = np.flatnonzero(role >= 0)
        device = self.device_of[batch.series[picked]]
        is_target = role[picked] == _TARGET
        # Within a device and instant, inputs come before the target: it sees them.
        order = np.lexsort((is_target, batch.ts[picked], device))
        picked, device = picked[order], device[order]
        if not len(picked):
            return _no_rows(self.entities, self.spec.n_features)
        _, devs, row, col = group_rows(device, np.arange(len(device), dtype=np.int64))
        parts = []
        for r0, r1 in _device_blocks(np.bincount(row)):
            lo, hi = np.searchsorted(row, [r0, r1])
            cells = slice(lo, hi)
            parts.append(
                self._block(batch, picked[cells], role, devs[r0:r1], row[cells] - r0, col[cells])
            )
        return FeatureRows(
            self.entities, *(np.concatenate(column) for column in zip(*parts, strict=True))
        )

    def _block(
        self, batch: Batch, picked: I64, role: I64, devs: I64, row: I64, col: I64
    ) -> tuple[I64, I64, I64, F64, F64, npt.NDArray[np.bool_], I64]:
        """`build` for a block of whole devices laid out as a grid (row: device, col: its
        rows in order); returns FeatureRows' columns after `entities`."""
        shape = (len(devs), int(col.max(initial=-1)) + 1)
        k = len(self.spec.inputs)
        st = self.state.gather(devs)
        kind = np.full(shape, _IGNORED, dtype=np.int64)
        kind[row, col] = role[picked]
        value = np.full(shape, np.nan)
        value[row, col] = batch.value[picked]
        ts = np.zeros(shape, dtype=np.int64)
        ts[row, col] = batch.ts[picked]
        targets = kind == _TARGET
        complete = targets & np.isfinite(value)
        raw = []
        for j in range(k):
            last = last_index(kind == j + 1)
            reading = at(value, last, st[f"in{j}"])
            read_at = at(ts, last, st[f"in{j}_ts"])
            fresh = ts - read_at <= self.spec.max_input_age_ms
            raw.append(np.where(fresh, reading, np.nan))
            complete &= np.isfinite(raw[j])
            st[f"in{j}"], st[f"in{j}_ts"] = reading[:, -1], read_at[:, -1]
        spec = self.spec
        if spec.sink_power:
            power = raw[spec.inputs.index(spec.sink_power)]
            airflow = np.maximum(raw[spec.inputs.index(spec.sink_airflow)], _MIN_AIRFLOW)
            conductance = airflow**-spec.sink_exponent
            raw += [conductance, power * conductance]
        k = spec.n_terms
        features = np.full((*shape, 2 * k), np.nan)
        a = np.where(complete, alpha(self.spec.lag_halflife), 0.0)
        lp_w = ew_scan(st["lp_w"], a, np.ones(shape))  # the filters' weight (start-up bias)
        for j in range(k):
            lp = ew_scan(st[f"lp{j}"], a, np.where(complete, raw[j], 0.0))
            with np.errstate(invalid="ignore", divide="ignore"):
                features[..., j], features[..., k + j] = raw[j], lp / lp_w
            st[f"lp{j}"] = lp[:, -1]
        st["lp_w"] = lp_w[:, -1]
        seen = st["n"][:, None] + np.cumsum(complete, axis=1) - complete
        st["n"] = st["n"] + complete.sum(axis=1)
        self.state.scatter(devs, st)
        cells = targets[row, col]
        r, c = row[cells], col[cells]
        return (
            devs[r],
            picked[cells],
            ts[r, c],
            value[r, c],
            features[r, c],
            complete[r, c],
            seen[r, c],
        )


def _device_blocks(counts: I64) -> Iterator[tuple[int, int]]:
    """Consecutive devices in blocks whose grid (devices x the longest one's rows) stays
    under MAX_CELLS cells (a device longer than that is a block of its own)."""
    start, widest = 0, 0
    for d, count in enumerate(counts.tolist()):
        widest = max(widest, count)
        if d > start and (d - start + 1) * widest > MAX_CELLS:
            yield start, d
            start, widest = d, count
    if len(counts):
        yield start, len(counts)


class ResidualScorer:
    """Streaming residual scores of a fitted `ResidualModel` (see the module docstring).

    `score(batch)` returns `Scores` for the batch's target rows only, in the batch's order,
    with `series` the target's id and `detector` RESIDUAL; rows of devices the model does not
    cover, or with an input missing, score NaN. State per device: the newest input readings,
    their filters, the CUSUM and the decision (about 100 bytes with four inputs).
    """

    def __init__(
        self,
        model: ResidualModel,
        registry: SeriesRegistry,
        config: ResidualConfig | None = None,
    ) -> None:
        self.model = model
        self.config = config or ResidualConfig()
        self._features = _Features(model.spec, registry)
        self._fitted = {entity: d for d, entity in enumerate(model.entities)}
        self._model_of = np.zeros(0, dtype=np.int64)
        self.state = StateTable(
            {
                "cus_hi": (np.float64, 0.0),
                "cus_lo": (np.float64, 0.0),
                "active": (np.bool_, False),
                "since": (np.int64, 0),
                "peak": (np.float64, 0.0),
                "kind": (np.int8, int(Detector.RESIDUAL)),
                "drift_num": (np.float64, 0.0),
                "drift_w": (np.float64, 0.0),
                "drift_level": (np.float64, 0.0),
                "drift_active": (np.bool_, False),
                "drift_since": (np.int64, 0),
                "drift_peak": (np.float64, 0.0),
                "drift_kind": (np.int8, int(Detector.DRIFT)),
            }
        )
        self._carried: dict[str, dict[str, Any]] = {}
        """Drift state handed over from the scorer of an older model, by entity, applied when
        the entity's device is first seen (`carry_drift`)."""
        self._n_seen = 0

    def score(self, batch: Batch) -> Scores:
        cfg = self.config
        rows = self._features.build(batch)
        if not len(rows.row):
            return _no_scores()
        entities = rows.entities
        if self._carried and len(entities) > self._n_seen:
            self._take_carried(entities)
        self._n_seen = len(entities)
        if len(entities) > len(self._model_of):
            self._model_of = np.array([self._fitted.get(e, -1) for e in entities], np.int64)
        fitted = self._model_of[rows.device]
        usable = rows.valid & (fitted >= 0)
        residual = np.full(len(rows.row), np.nan)
        residual[usable] = rows.target[usable] - self.model.predict(
            fitted[usable], rows.features[usable]
        )
        z = np.full(len(rows.row), np.nan)
        z[usable] = residual[usable] / self.model.sigma[fitted[usable]]
        warm = usable & (rows.seen >= cfg.warmup)
        z = np.where(warm, z, np.nan)

        _, devs, row, col = group_rows(rows.device, np.arange(len(rows.row), dtype=np.int64))
        shape = (len(devs), int(col.max(initial=-1)) + 1)
        grid_z = np.zeros(shape)
        grid_z[row, col] = np.where(warm, z, 0.0)
        grid_warm = np.zeros(shape, dtype=np.bool_)
        grid_warm[row, col] = warm
        present = np.zeros(shape, dtype=np.bool_)
        present[row, col] = True
        ts = np.zeros(shape, dtype=np.int64)
        ts[row, col] = rows.ts
        st = self.state.gather(devs)
        capped = np.clip(grid_z, -cfg.cusum_cap, cfg.cusum_cap)
        cus_hi, cus_lo = cfg.cusum(st["cus_hi"], st["cus_lo"], capped, grid_warm)
        jumped = cfg.deviation(grid_z)
        grid_score = np.where(grid_warm, np.maximum(jumped, cfg.shift(cus_hi, cus_lo)), 0.0)
        kind = np.full(shape, int(Detector.RESIDUAL), dtype=np.int8)
        before = scoring.DecisionState(st["active"], st["since"], st["peak"], st["kind"])
        decisions, after = scoring.decide(before, present, grid_score, kind, ts, cfg.thresholds)
        st["cus_hi"], st["cus_lo"] = cus_hi[:, -1], cus_lo[:, -1]
        st["active"], st["since"], st["peak"] = after.active, after.since, after.peak

        covered = np.zeros(len(rows.row), dtype=np.bool_)
        covered[warm] = self.model.covered(fitted[warm], rows.features[warm], cfg.drift_margin)
        grid_covered = np.zeros(shape, dtype=np.bool_)
        grid_covered[row, col] = covered
        drift_score, drift_decisions = self._drift(st, grid_covered, grid_z, ts)
        self.state.scatter(devs, st)

        target_series = batch.series[rows.row]
        owners = _target_ids(devs, rows, target_series)
        changes = scoring.collect_changes(decisions, grid_score, ts, owners)
        changes += scoring.collect_changes(drift_decisions, drift_score, ts, owners)
        drifting = drift_score >= grid_score
        score = np.where(usable, np.maximum(grid_score, drift_score)[row, col], np.nan)
        detector = np.where(drifting, int(Detector.DRIFT), int(Detector.RESIDUAL))[row, col]
        active = (decisions.active | drift_decisions.active)[row, col]
        # Rows back in the batch's order.
        back = np.argsort(rows.row, kind="stable")
        return Scores(
            ts=rows.ts[back],
            series=target_series[back],
            value=rows.target[back],
            score=score[back],
            detector=detector.astype(np.int8)[back],
            z=z[back],
            is_anomaly=active[back],
            components={
                Detector.RESIDUAL: np.where(usable, grid_score[row, col], np.nan)[back],
                Detector.DRIFT: np.where(usable, drift_score[row, col], np.nan)[back],
            },
            changes=tuple(sorted(changes, key=lambda c: (c.ts, c.series))),
        )

    def _drift(
        self, st: dict[str, Any], covered: npt.NDArray[np.bool_], z: F64, ts: I64
    ) -> tuple[F64, scoring.Decisions]:
        """The drift level of each device row of the grid (the average z of its covered
        samples, `drift_halflife`), its score (0.9 at `drift_on` sigmas) and decisions,
        updating the state `st` in place. A level holds while the device runs outside the
        conditions its history covers (a load burst, a fan at a level never seen)."""
        cfg = self.config
        a = np.where(covered, alpha(cfg.drift_halflife), 0.0)
        num, weight = ew_average(st["drift_num"], st["drift_w"], a, np.where(covered, z, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.where(weight >= cfg.drift_min_weight, num / weight, 0.0)
        level = np.where(covered, level, np.nan)
        level = at(level, last_index(covered), st["drift_level"])
        score = np.minimum(1.0, cfg.on * np.abs(level) / cfg.drift_on)
        thresholds = scoring.Thresholds(cfg.on, cfg.on * cfg.drift_off / cfg.drift_on)
        kind = np.full(covered.shape, int(Detector.DRIFT), dtype=np.int8)
        before = scoring.DecisionState(
            st["drift_active"], st["drift_since"], st["drift_peak"], st["drift_kind"]
        )
        decisions, after = scoring.decide(before, covered, score, kind, ts, thresholds)
        st["drift_num"], st["drift_w"] = num[:, -1], weight[:, -1]
        st["drift_level"] = level[:, -1]
        st["drift_active"], st["drift_since"], st["drift_peak"] = (
            after.active,
            after.since,
            after.peak,
        )
        return score, decisions

    def drift_states(self) -> dict[str, dict[str, Any]]:
        """Each scored device's drift state, by entity (for `carry_drift`)."""
        names = [n for n in self.state.names if n.startswith("drift_")]
        ids = np.arange(self._n_seen)
        table = self.state.gather(ids)
        return {
            entity: {n: table[n][d] for n in names}
            for d, entity in enumerate(self._features.entities[: self._n_seen])
        }

    def carry_drift(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Start each device of `states` with its drift state (an older model's scorer's
        `drift_states`): a retrained model would otherwise restart every level from zero, and
        a drift slower than the retraining period would never be called. The new model's
        intercept took in a little of the drift (docs/ANOMALY.md)."""
        fitted = set(self.model.entities)
        self._carried.update({e: dict(v) for e, v in states.items() if e in fitted})

    def _take_carried(self, entities: tuple[str, ...]) -> None:
        new = [d for d in range(self._n_seen, len(entities)) if entities[d] in self._carried]
        if not new:
            return
        ids = np.array(new, dtype=np.int64)
        table = self.state.gather(ids)
        for i, d in enumerate(new):
            for name, value in self._carried.pop(entities[d]).items():
                table[name][i] = value
        self.state.scatter(ids, table)

    def drift_level(self, series: int) -> float:
        """The newest drift level (signed, in sigmas) of the device whose target is
        `series` (NaN: not scored yet)."""
        features = self._features
        if not 0 <= series < len(features.registry):
            return math.nan
        device = features.devices.get(features.registry.key(series).entity)
        if device is None or device >= len(self.state):
            return math.nan
        return float(self.state["drift_level"][device])


def _target_ids(devs: I64, rows: FeatureRows, series: I32) -> I32:
    """The target series id of each device row of the grid (its first target sample's)."""
    first = np.searchsorted(rows.device, devs)
    return series[first]


def _no_scores() -> Scores:
    empty = np.zeros(0)
    return Scores(
        ts=np.zeros(0, dtype=np.int64),
        series=np.zeros(0, dtype=np.int32),
        value=empty,
        score=empty,
        detector=np.zeros(0, dtype=np.int8),
        z=empty,
        is_anomaly=np.zeros(0, dtype=np.bool_),
        components={Detector.RESIDUAL: empty, Detector.DRIFT: empty},
    )
