"""The physics residual: fitted from history, it explains a CPU's temperature by its load and
air, and what it cannot explain (a stopped fan, a drifting probe) scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rackwatch.engine.anomaly import (
    Detector,
    ResidualConfig,
    ResidualModel,
    ResidualScorer,
    ResidualSpec,
)
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin
from rackwatch.twin.faults import ScheduledFault

HOUR_MS = 3_600_000
SPEC = ResidualSpec()


def synthetic(
    registry: SeriesRegistry, n: int, seed: int, devices: tuple[str, ...] = ("d1", "d2", "d3")
) -> Batch:
    """Devices whose target is exactly 5 + 0.2 * power_lp + inlet + noise (time-major rows,
    each instant's inputs before its target, as they would arrive)."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * 5_000
    parts = []
    for device in devices:
        util = np.clip(0.3 + np.cumsum(rng.normal(0, 0.02, n)), 0.0, 1.0)
        power = 100 + 200 * util + rng.normal(0, 1, n)
        inlet = 22 + np.cumsum(rng.normal(0, 0.02, n))
        airflow = 35 + rng.normal(0, 0.2, n)
        lagged = np.empty(n)
        level = power[0]
        for i in range(n):
            level += (1 - 2 ** (-1 / SPEC.lag_halflife)) * (power[i] - level)
            lagged[i] = level
        cpu = 5 + 0.2 * lagged + inlet + rng.normal(0, 0.1, n)
        for metric, values in zip(
            (*SPEC.inputs, SPEC.target), (util, power, inlet, airflow, cpu), strict=True
        ):
            parts.append((ts, np.full(n, registry.intern(device, metric)), values))
    ts_all, series, value = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.argsort(ts_all, kind="stable")
    return Batch.of(ts_all[order], series[order], value[order])


def test_fit_explains_a_linear_device_down_to_its_noise() -> None:
    registry = SeriesRegistry()
    model = ResidualModel.fit(synthetic(registry, 2_000, 0), registry)
    assert model.entities == ("d1", "d2", "d3")
    np.testing.assert_allclose(model.sigma, 0.1, rtol=0.25)
    scorer = ResidualScorer(model, registry)
    scores = scorer.score(synthetic(registry, 1_000, 1))
    assert np.sqrt(np.nanmean(scores.z**2)) < 2.5  # out of sample, inputs wandering off
    assert set(np.unique(scores.series)) == {registry.get(d, SPEC.target) for d in model.entities}


def test_devices_without_enough_history_or_an_input_are_left_out() -> None:
    registry = SeriesRegistry()
    history = synthetic(registry, 2_000, 0)
    short = synthetic(registry, 30, 1, devices=("short",))
    no_airflow = synthetic(registry, 2_000, 2, devices=("blind",))
    blind_airflow = registry.get("blind", "airflow_cfm")
    no_airflow = no_airflow.take(no_airflow.series != blind_airflow)
    model = ResidualModel.fit(Batch.concat([history, short, no_airflow]), registry)
    assert model.entities == ("d1", "d2", "d3")
    scores = ResidualScorer(model, registry).score(no_airflow)
    assert len(scores) == 2_000 and np.all(np.isnan(scores.score))


def test_scores_do_not_depend_on_batches_and_rows_keep_their_order() -> None:
    registry = SeriesRegistry()
    model = ResidualModel.fit(synthetic(registry, 2_000, 0), registry)
    live = synthetic(registry, 600, 5)
    whole = ResidualScorer(model, registry).score(live)
    scorer = ResidualScorer(model, registry)
    cuts = np.r_[
        0, np.sort(np.random.default_rng(1).choice(len(live), 50, replace=False)), len(live)
    ]
    parts = [scorer.score(live.take(np.arange(a, b))) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_allclose(np.concatenate([p.z for p in parts]), whole.z, atol=1e-9)
    targets = np.isin(live.series, [registry.get(d, SPEC.target) for d in model.entities])
    assert np.array_equal(whole.series, live.series[targets])
    assert np.array_equal(whole.value, live.value[targets])


def test_a_stale_input_leaves_the_row_unscored() -> None:
    registry = SeriesRegistry()
    model = ResidualModel.fit(synthetic(registry, 2_000, 0), registry)
    live = synthetic(registry, 400, 3, devices=("d1",))
    inlet = registry.get("d1", "inlet_temperature_celsius")
    keep = ~((live.series == inlet) & (live.ts >= 200 * 5_000))  # inlet silent from row 200
    scores = ResidualScorer(model, registry).score(live.take(keep))
    late = scores.ts > 200 * 5_000 + SPEC.max_input_age_ms
    assert np.all(np.isnan(scores.score[late])) and np.isfinite(scores.score[50:150]).all()


@pytest.mark.parametrize("seed", [1, 8])
def test_a_stopped_fan_raises_its_servers_residual_and_not_the_others(seed: int) -> None:
    registry = SeriesRegistry()
    source = TwinSource(Twin.from_scenario("fan-fail", seed=seed), registry)
    history, _ = source.read(300)  # 25 min; c01/r01/s03/fan1 stops at 30 min
    model = ResidualModel.fit(history, registry)
    scorer = ResidualScorer(model, registry)
    scorer.score(history)
    live, events = source.read(240)
    fault_ts = next(e.ts for e in events if e.kind == "fault.injected")
    scores = scorer.score(live)
    after = scores.ts >= fault_ts + 120_000
    failing = registry.get("c01/r01/s03", SPEC.target)
    medians = {
        int(sid): float(np.nanmedian(scores.z[(scores.series == sid) & after]))
        for sid in np.unique(scores.series)
    }
    assert medians.pop(failing) > 8.0
    assert max(abs(z) for z in medians.values()) < 6.0
    starts = [c for c in scores.changes if c.is_start and c.ts >= fault_ts]
    assert starts[0].series == failing and starts[0].ts - fault_ts <= 120_000
    assert starts[0].detector == Detector.RESIDUAL
    assert not any(c.series != failing and c.ts - fault_ts < 150_000 for c in starts)


def test_a_drifting_cpu_probe_is_caught_by_its_residual() -> None:
    """Seed 000's sensor drift (+0.2 °C/h): univariately invisible, a residual that grows."""
    drift = ScheduledFault(
        "sensor_drift",
        "c01/r01/s04",
        3 * 3600.0,
        {"metric": "cpu_temperature_celsius", "slope_per_hour": 0.2},
    )
    registry = SeriesRegistry()
    twin = Twin("medium", seed=2, faults=[drift])
    source = TwinSource(twin, registry)
    history, _ = source.read(3 * 720)
    model = ResidualModel.fit(history, registry)
    scorer = ResidualScorer(model, registry, ResidualConfig())
    scorer.score(history)
    scores = scorer.score(source.read(3 * 720)[0])
    probe = registry.get("c01/r01/s04", SPEC.target)
    mine = scores.series == probe
    half_hours = [float(np.nanmedian(z)) for z in np.array_split(scores.z[mine], 6)]
    assert half_hours[-1] > half_hours[0] + 2.0
    start = next(c for c in scores.changes if c.is_start and c.series == probe)
    assert start.ts - (twin.start_ms + 3 * HOUR_MS) <= 1.5 * HOUR_MS


def test_the_drift_level_finds_a_drifting_probe_and_not_a_load_it_never_saw() -> None:
    """Seed 000's drift (+0.2 °C/h) shows in the residual's slow average over conditions the
    history covers (s04 ran a load in its history); a long load burst on s02 (conditions
    never seen: the fit extrapolates) does not count toward a drift."""
    start_s = 3 * 3600.0
    faults = [
        ScheduledFault(
            "load_burst", "c01/r01/s04", 3600.0, {"utilization": 0.7, "duration_s": 3600.0}
        ),
        ScheduledFault(
            "sensor_drift",
            "c01/r01/s04",
            start_s,
            {"metric": "cpu_temperature_celsius", "slope_per_hour": 0.2},
        ),
        ScheduledFault(
            "load_burst", "c01/r01/s02", start_s, {"utilization": 0.8, "duration_s": 7200.0}
        ),
    ]
    registry = SeriesRegistry()
    twin = Twin("medium", seed=2, faults=faults)
    source = TwinSource(twin, registry)
    history, _ = source.read(3 * 720)
    model = ResidualModel.fit(history, registry)
    assert model.device_low is not None and model.device_high is not None
    assert np.all(model.device_low <= model.device_high)
    scorer = ResidualScorer(model, registry)
    scorer.score(history)
    scores = scorer.score(source.read(6 * 720)[0])
    probe = registry.get("c01/r01/s04", SPEC.target)
    drifts = [c for c in scores.changes if c.detector == Detector.DRIFT]
    assert [(c.series, c.is_start) for c in drifts] == [(probe, True)]
    late = (drifts[0].ts - twin.start_ms - start_s * 1000) / HOUR_MS
    assert 1.0 <= late <= 5.0  # 0.2 to 1 °C of drift; sigma is about 0.2 °C
    assert scorer.drift_level(probe) >= ResidualConfig().drift_on
    burst = registry.get("c01/r01/s02", SPEC.target)
    assert abs(scorer.drift_level(burst)) < 1.0
    mine = scores.series == probe
    assert np.all(scores.is_anomaly[mine & (scores.ts >= drifts[0].ts)])
    assert np.all(scores.components[Detector.DRIFT][mine & (scores.ts >= drifts[0].ts)] >= 0.9)

    # A retrained model (here: the same history) takes over the drift levels: the drift goes
    # on without ending or starting again, where a fresh scorer would begin from zero.
    level = scorer.drift_level(probe)
    successor = ResidualScorer(ResidualModel.fit(history, registry), registry)
    successor.carry_drift(scorer.drift_states())
    fresh = ResidualScorer(ResidualModel.fit(history, registry), registry)
    more = source.read(60)[0]
    carried = successor.score(more)
    assert not [c for c in carried.changes if c.detector == Detector.DRIFT]
    assert abs(successor.drift_level(probe) - level) < 0.5
    assert np.all(carried.is_anomaly[carried.series == probe])
    fresh.score(more)
    assert abs(fresh.drift_level(probe)) < 0.5 * level


def test_the_heatsink_term_follows_fan_speed_changes() -> None:
    """A CPU whose rise is its power times (Q_nom/Q)^0.8: with the heatsink term the fit is
    exact down to the noise across fan levels; a sum of the inputs alone is not."""
    rng = np.random.default_rng(4)
    registry = SeriesRegistry()
    n = 3_000
    ts = np.arange(n, dtype=np.int64) * 5_000
    util = np.clip(0.4 + np.cumsum(rng.normal(0, 0.02, n)), 0.05, 1.0)
    power = 120 + 250 * util + rng.normal(0, 1, n)
    inlet = 22 + rng.normal(0, 0.05, n)
    airflow = np.repeat(rng.choice([25.0, 40.0, 65.0], n // 100), 100) * (
        1 + rng.normal(0, 0.005, n)
    )
    cpu = inlet + 0.2 * power * (40.0 / airflow) ** 0.8 + rng.normal(0, 0.1, n)
    parts = [
        (ts, np.full(n, registry.intern("d", metric)), values)
        for metric, values in zip(
            (*SPEC.inputs, SPEC.target), (util, power, inlet, airflow, cpu), strict=True
        )
    ]
    ts_all, series, value = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.argsort(ts_all, kind="stable")
    batch = Batch.of(ts_all[order], series[order], value[order])
    with_sink = ResidualModel.fit(batch, registry)
    without = ResidualModel.fit(batch, registry, ResidualSpec(sink_power=""))
    assert with_sink.spec.n_features == without.spec.n_features + 4
    assert float(with_sink.sigma[0]) < 0.25  # the noise: 0.1 °C, and 1 W of power through the fit
    assert float(without.sigma[0]) > 3 * float(with_sink.sigma[0])


def test_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="inputs"):
        ResidualSpec(inputs=())
    with pytest.raises(ValueError, match="target"):
        ResidualSpec(inputs=("cpu_temperature_celsius",))
    with pytest.raises(ValueError, match="heatsink"):
        ResidualSpec(inputs=("power_watts",), sink_airflow="airflow_cfm")
    with pytest.raises(ValueError, match="drift_off"):
        ResidualConfig(drift_on=1.0, drift_off=2.0)
