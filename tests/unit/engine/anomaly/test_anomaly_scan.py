"""The closed-form recursions equal their one-sample-at-a-time definitions, and the hysteresis
carries its state (start, peak, detector) across grids."""

from __future__ import annotations

import numpy as np
import pytest

from rackwatch.engine.anomaly import scan
from rackwatch.engine.anomaly.scores import DecisionState, Detector, Thresholds, decide
from rackwatch.engine.anomaly.state import StateTable


def _ew_loop(v0: np.ndarray, a: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    v = v0.copy()
    for c in range(a.shape[1]):
        v = np.where(a[:, c] > 0, (1 - a[:, c]) * v + a[:, c] * u[:, c], v)
        out[:, c] = v
    return out


@pytest.mark.parametrize("cols", [1, 7, scan.SCAN_WIDTH + 3, 3 * scan.SCAN_WIDTH])
def test_ew_scan_matches_the_recursion_even_on_large_offsets_and_nan_where_unweighted(
    cols: int,
) -> None:
    rng = np.random.default_rng(cols)
    a = rng.uniform(0.0, 0.5, (4, cols)) * (rng.random((4, cols)) < 0.8)
    u = 1e9 + rng.normal(size=(4, cols))
    u[a == 0] = np.nan  # ignored where the weight is 0
    v0 = np.full(4, 1e9)
    got = scan.ew_scan(v0, a, u)
    want = _ew_loop(v0, a, u)
    np.testing.assert_allclose(got - 1e9, want - 1e9, rtol=0, atol=1e-6)
    _, weight = scan.ew_average(np.zeros(4), np.zeros(4), a, np.where(a > 0, u - 1e9, 0.0))
    np.testing.assert_allclose(weight, _ew_loop(np.zeros(4), a, np.ones_like(a)), atol=1e-12)


def test_lindley_is_the_cusum_recursion() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(-0.2, 1.0, (3, 200))
    s0 = np.array([0.0, 2.5, 10.0])
    want = np.empty_like(y)
    s = s0.copy()
    for c in range(y.shape[1]):
        s = np.maximum(0.0, s + y[:, c])
        want[:, c] = s
    np.testing.assert_allclose(scan.lindley(s0, y), want, atol=1e-9)


def test_indices_of_the_last_marked_column() -> None:
    mask = np.array([[False, True, False, True], [False, False, False, False]])
    assert scan.last_index(mask).tolist() == [[-1, 1, 1, 3], [-1, -1, -1, -1]]
    assert scan.prev_index(mask).tolist() == [[-1, -1, 1, 1], [-1, -1, -1, -1]]


def test_squash_is_a_smooth_increasing_map_onto_the_unit_interval() -> None:
    x = np.linspace(0.0, 50.0, 2001)
    y = scan.squash(x, 5.0, 0.5)
    assert y[0] == 0.0 and np.all(np.diff(y) >= 0) and y.max() <= 1.0
    assert scan.squash(np.array([5.0]), 5.0, 0.5)[0] == pytest.approx(0.5, abs=1e-4)


def test_group_rows_lays_series_out_in_time_order_keeping_ties_in_input_order() -> None:
    keys = np.array([7, 3, 7, 3, 7])
    ts = np.array([20, 5, 10, 5, 10])
    order, row_keys, row, col = scan.group_rows(keys, ts)
    assert row_keys.tolist() == [3, 7]
    assert order.tolist() == [1, 3, 2, 4, 0]
    assert row.tolist() == [0, 0, 1, 1, 1] and col.tolist() == [0, 1, 0, 1, 2]


def test_state_table_grows_and_keeps_rows() -> None:
    table = StateTable({"x": (np.float64, np.nan)})
    rows = table.gather(np.array([2]))
    rows["x"][:] = 5.0
    table.scatter(np.array([2]), rows)
    table.ensure(100)
    assert len(table) == 100 and table["x"][2] == 5.0 and np.isnan(table["x"][99])


def _state(active: bool = False, since: int = 0, peak: float = 0.0) -> DecisionState:
    return DecisionState(
        np.array([active]), np.array([since]), np.array([peak]), np.array([1], np.int8)
    )


def test_hysteresis_starts_at_on_ends_below_off_and_reports_the_peak() -> None:
    score = np.array([[0.1, 0.92, 0.6, 0.97, 0.55, 0.4, 0.95]])
    kind = np.full(score.shape, int(Detector.STUCK), np.int8)
    ts = np.arange(7)[None] * 10
    d, after = decide(_state(), score >= 0, score, kind, ts, Thresholds())
    assert d.active[0].tolist() == [False, True, True, True, True, False, True]
    assert d.starts[0].nonzero()[0].tolist() == [1, 6] and d.ends[0].nonzero()[0].tolist() == [5]
    assert d.peak[0, 5] == 0.97 and d.since[0, 5] == 10 and d.detector[0, 5] == Detector.STUCK
    assert after.active[0] and after.since[0] == 60 and after.peak[0] == 0.95


def test_hysteresis_carries_an_open_anomaly_into_the_next_grid() -> None:
    score = np.array([[0.7, 0.99, 0.2]])
    kind = np.zeros(score.shape, np.int8)
    d, after = decide(
        _state(True, since=-50, peak=0.93),
        score >= 0,
        score,
        kind,
        np.arange(3)[None],
        Thresholds(),
    )
    assert d.starts.sum() == 0 and d.ends[0].tolist() == [False, False, True]
    assert d.since[0, 2] == -50 and d.peak[0, 2] == 0.99 and d.detector[0, 2] == 1
    assert not after.active[0] and after.peak[0] == 0.0


def test_absent_cells_do_not_decide() -> None:
    score = np.array([[0.95, 0.0, 0.0]])
    present = np.array([[True, False, False]])
    d, after = decide(
        _state(), present, score, np.zeros((1, 3), np.int8), np.arange(3)[None], Thresholds()
    )
    assert d.active[0].tolist() == [True, True, True] and after.active[0]


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="off <= on"):
        Thresholds(on=0.4, off=0.6)
