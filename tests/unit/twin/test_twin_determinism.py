"""Same seed, same data, bit for bit, however the run is cut into blocks."""

from __future__ import annotations

import numpy as np

from rackwatch.twin import Twin


def _run(seed: int, blocks: list[int], scenario: str = "burst-fan-degradation") -> np.ndarray:
    twin = Twin.from_scenario(scenario, seed=seed)
    return np.concatenate([twin.run(n).values for n in blocks])


def test_same_seed_same_data() -> None:
    assert np.array_equal(_run(42, [1500]), _run(42, [1500]))


def test_different_seed_different_data() -> None:
    a, b = _run(1, [200]), _run(2, [200])
    assert not np.array_equal(a, b)
    cpu = Twin("very-large").layout.blocks["cpu_temperature_celsius"]
    assert np.abs(a[:, cpu] - b[:, cpu]).mean() > 1.0  # not just the noise


def test_blocking_does_not_change_the_data() -> None:
    whole = _run(7, [1500])
    assert np.array_equal(whole, _run(7, [1] * 30 + [7, 700, 13, 750]))


def test_blocking_does_not_change_lost_telemetry() -> None:
    def absent(blocks: list[int]) -> np.ndarray:
        twin = Twin.from_scenario("network-loss", seed=3)
        frames = [twin.run(n) for n in blocks]
        return np.concatenate(
            [np.zeros(f.values.shape, bool) if f.absent is None else f.absent for f in frames]
        )

    whole = absent([500])
    assert whole.any()
    assert np.array_equal(whole, absent([360, 3, 137]))


def test_timestamps_are_a_regular_utc_grid() -> None:
    twin = Twin("small", start_ms=1_700_000_000_000, step_s=10.0)
    first, second = twin.run(3), twin.run(2)
    assert first.ts.tolist() == [1_700_000_000_000 + 10_000 * k for k in range(3)]
    assert second.ts[0] == first.ts[-1] + 10_000 and twin.now_ms == second.ts[-1] + 10_000
