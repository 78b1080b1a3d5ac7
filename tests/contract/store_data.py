"""Data and a plain reference for the Store contract suite (no store code used here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rackwatch.model import Batch, SeriesRegistry

T0 = 1_795_392_000_000  # 2026-11-23 00:00 UTC
STEP_MS = 20_000


@dataclass
class Dataset:
    """Samples of a few series, time-major, with NULL readings (NaN) and absent rows (gaps)."""

    keys: list[tuple[str, str]]
    ts: np.ndarray  # all rows, in write order
    series: np.ndarray
    value: np.ndarray
    batches: list[Batch]
    end_ms: int

    def rows_of(self, sid: int) -> tuple[np.ndarray, np.ndarray]:
        sel = self.series == sid
        order = np.argsort(self.ts[sel], kind="stable")
        return self.ts[sel][order], self.value[sel][order]


def make_dataset(
    registry: SeriesRegistry, hours: float = 30.0, step_ms: int = STEP_MS, seed: int = 0
) -> Dataset:
    rng = np.random.default_rng(seed)
    keys = [
        (f"c01/r01/s{i:02d}", m) for i in (1, 2) for m in ("power_watts", "cpu_temperature_celsius")
    ] + [("c01/r01/s01/fan1", "fan_rpm"), ("room/crac1", "crac_power_watts")]
    ids = np.array([registry.intern(e, m) for e, m in keys], np.int32)
    n = int(hours * 3_600_000 / step_ms)
    instants = T0 + np.arange(n, dtype=np.int64) * step_ms
    values = np.round(rng.normal(50, 5, (n, len(ids))), 1)
    values[rng.random(values.shape) < 0.03] = np.nan
    values[90:93, 1] = np.nan  # a whole minute of NULL readings for series 1
    present = rng.random(values.shape) > 0.02  # absent rows
    present[300:330, 2] = False  # a 10-minute gap in series 2
    batches, ts_all, s_all, v_all = [], [], [], []
    for a in range(0, n, 45):
        b = min(n, a + 45)
        grid = Batch.from_grid(instants[a:b], ids, values[a:b])
        batch = grid.take(present[a:b].reshape(-1))
        batches.append(batch)
        ts_all.append(batch.ts)
        s_all.append(batch.series)
        v_all.append(batch.value)
    return Dataset(
        keys,
        np.concatenate(ts_all),
        np.concatenate(s_all),
        np.concatenate(v_all),
        batches,
        int(instants[-1]) + step_ms,
    )


def reference_rollup(ts: np.ndarray, value: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """Bucket rows of ONE series (sorted by ts) the plain way: one bucket at a time."""
    bucket = ts - ts % width
    out: dict[str, list[Any]] = {
        k: [] for k in ("ts", "open", "high", "low", "close", "avg", "count", "missing")
    }
    for b in np.unique(bucket):
        v = value[bucket == b]
        ok = v[~np.isnan(v)]
        out["ts"].append(b)
        out["count"].append(len(ok))
        out["missing"].append(len(v) - len(ok))
        if len(ok):
            out["open"].append(ok[0])
            out["high"].append(ok.max())
            out["low"].append(ok.min())
            out["close"].append(ok[-1])
            out["avg"].append(ok.mean())
        else:
            for k in ("open", "high", "low", "close", "avg"):
                out[k].append(np.nan)
    return {k: np.asarray(v) for k, v in out.items()}


def assert_rollup_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(got["ts"], want["ts"])
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    np.testing.assert_allclose(got["avg"], want["avg"], rtol=1e-12, err_msg="avg")
    np.testing.assert_array_equal(got["count"], want["count"])
    np.testing.assert_array_equal(got["missing"], want["missing"])
