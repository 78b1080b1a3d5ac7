"""Saved residual models: round trip, versions, pruning, damaged files."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rackwatch.engine.anomaly import Detector, ResidualModel, ResidualScorer
from rackwatch.engine.intelligence.models import ModelStore, ModelVersion
from rackwatch.model import SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin

T0 = 1_767_225_600_000


@pytest.fixture(scope="module")
def fitted() -> tuple[ResidualModel, SeriesRegistry, TwinSource]:
    registry = SeriesRegistry()
    source = TwinSource(Twin("small", seed=3), registry)
    history, _ = source.read(240)
    return ResidualModel.fit(history, registry), registry, source


def save(store: ModelStore, model: ResidualModel, at: int = 0) -> ModelVersion:
    return store.save(
        model, trained_at_ms=T0 + at, trained_from_ms=T0 - 3_600_000, trained_to_ms=T0, n_rows=99
    )


def test_a_saved_model_loads_back_and_predicts_the_same(
    tmp_path: Path, fitted: tuple[ResidualModel, SeriesRegistry, TwinSource]
) -> None:
    model, registry, source = fitted
    models = ModelStore(tmp_path / "models")
    saved = save(models, model)
    found = models.latest()
    assert found is not None
    loaded, version = found
    assert version == saved and version.label == "v1"
    assert (version.n_devices, version.n_rows, version.target) == (5, 99, "cpu_temperature_celsius")
    assert version.n_fitted_rows == int(model.n_rows.sum())
    assert version.sigma_min <= version.sigma_median <= version.sigma_max
    assert loaded.spec == model.spec and loaded.entities == model.entities
    for name in (
        "coef",
        "intercept",
        "sigma",
        "n_rows",
        "low",
        "high",
        "device_low",
        "device_high",
    ):
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, model.spec.n_features)) * 100
    device = rng.integers(0, len(model.entities), 50)
    assert np.array_equal(loaded.predict(device, features), model.predict(device, features))
    live, _ = source.read(60)
    a = ResidualScorer(model, registry).score(live)
    b = ResidualScorer(loaded, registry).score(live)
    assert np.array_equal(a.score, b.score, equal_nan=True)
    assert np.array_equal(a.z, b.z, equal_nan=True)
    # Private files, whole ones only: no temporary file left behind.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "model-000001.json",
        "model-000001.npz",
    ]
    for path in (tmp_path / "models").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "models").stat().st_mode) == 0o700


def test_versions_increase_and_only_the_newest_are_kept(
    tmp_path: Path, fitted: tuple[ResidualModel, SeriesRegistry, TwinSource]
) -> None:
    model = fitted[0]
    models = ModelStore(tmp_path, keep=3)
    assert models.versions() == [] and models.latest() is None
    saved = [save(models, model, at=i) for i in range(5)]
    assert [v.version for v in saved] == [1, 2, 3, 4, 5]
    assert [v.version for v in models.versions()] == [3, 4, 5]
    assert len(list(tmp_path.iterdir())) == 6
    found = models.latest()
    assert found is not None and found[1].label == "v5" and found[1].trained_at_ms == T0 + 4
    # Another store on the directory (a restart) goes on counting.
    assert save(ModelStore(tmp_path, keep=3), model).version == 6


def test_a_damaged_newest_version_falls_back_to_the_one_before(
    tmp_path: Path,
    fitted: tuple[ResidualModel, SeriesRegistry, TwinSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = fitted[0]
    models = ModelStore(tmp_path)
    for i in range(3):
        save(models, model, at=i)
    newest = tmp_path / "model-000003.npz"
    newest.write_bytes(newest.read_bytes()[:200])  # truncated
    (tmp_path / "model-000002.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        found = models.latest()
    assert found is not None and found[1].version == 1
    assert "model version 3" in caplog.text and "model version 2" in caplog.text
    assert [v.version for v in models.versions()] == [1, 3]  # 3's manifest still reads
    # The damaged files are never overwritten: the next version is 4.
    assert save(models, model).version == 4


def test_an_unfinished_save_is_not_a_version(
    tmp_path: Path, fitted: tuple[ResidualModel, SeriesRegistry, TwinSource]
) -> None:
    model = fitted[0]
    models = ModelStore(tmp_path, keep=2)
    save(models, model)
    (tmp_path / "model-000002.npz").write_bytes(b"half")  # crashed before its manifest
    (tmp_path / ".model-000002.npz.tmp").write_bytes(b"half")
    found = models.latest()
    assert found is not None and found[1].version == 1
    assert save(models, model).version == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-000001.json",
        "model-000001.npz",
        "model-000003.json",
        "model-000003.npz",
    ]


def rewrite(path: Path, arrays: dict[str, Any]) -> None:
    """Replace a version's arrays, its manifest's digest made to match (checks past it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    path.write_bytes(data)
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("sigma"), "'sigma' is missing"),
        (lambda a: a.update(coef=a["coef"][:, :3]), "'coef' has shape"),
        (lambda a: a.update(intercept=a["intercept"] * np.nan), "NaN or infinite"),
        (lambda a: a.update(sigma=-a["sigma"]), "positive"),
        (lambda a: a.update(entities=a["entities"].astype(object)), "allow_pickle"),
        (lambda a: a.update(spec_min_rows=np.array("many")), "spec_min_rows"),
        (lambda a: a.pop("device_high"), "'device_high' is missing"),
        (lambda a: a.update(device_low=a["device_low"][:, :2]), "'device_low' has shape"),
    ],
)
def test_arrays_that_fail_a_check_are_refused(
    tmp_path: Path,
    fitted: tuple[ResidualModel, SeriesRegistry, TwinSource],
    caplog: pytest.LogCaptureFixture,
    change: Any,
    message: str,
) -> None:
    model = fitted[0]
    models = ModelStore(tmp_path)
    save(models, model)
    save(models, model)
    arrays = model.to_arrays()
    change(arrays)
    rewrite(tmp_path / "model-000002.npz", arrays)
    with caplog.at_level(logging.WARNING):
        found = models.latest()
    assert found is not None and found[1].version == 1
    assert message in caplog.text


def test_a_digest_mismatch_or_a_wrong_manifest_is_refused(
    tmp_path: Path, fitted: tuple[ResidualModel, SeriesRegistry, TwinSource]
) -> None:
    model = fitted[0]
    models = ModelStore(tmp_path)
    save(models, model)
    save(models, model)
    manifest = json.loads((tmp_path / "model-000002.json").read_text())
    manifest["sha256"] = "0" * 64
    (tmp_path / "model-000002.json").write_text(json.dumps(manifest))
    found = models.latest()
    assert found is not None and found[1].version == 1
    with pytest.raises(ValueError, match="'trained_from_ms' is missing or of the wrong type"):
        ModelVersion.from_json({"format": 1, **dict.fromkeys(("version", "trained_at_ms"), 1)})
    with pytest.raises(ValueError, match="format"):
        ModelVersion.from_json([1, 2])


def test_a_model_without_devices_is_not_saved(
    tmp_path: Path, fitted: tuple[ResidualModel, SeriesRegistry, TwinSource]
) -> None:
    model = fitted[0]
    arrays = model.to_arrays()
    for name in ("coef", "intercept", "sigma", "n_rows", "entities", "device_low", "device_high"):
        arrays[name] = arrays[name][:0]
    empty = ResidualModel.from_arrays(arrays)
    assert empty.entities == ()
    with pytest.raises(ValueError, match="no device"):
        save(ModelStore(tmp_path), empty)
    with pytest.raises(ValueError, match="keep"):
        ModelStore(tmp_path, keep=0)


def test_a_model_saved_without_device_ranges_loads_and_counts_no_drift(
    fitted: tuple[ResidualModel, SeriesRegistry, TwinSource],
) -> None:
    """A model file written before the device ranges were kept: it scores as before, and no
    sample counts toward a drift until the next fit."""
    model, registry, source = fitted
    arrays = model.to_arrays()
    del arrays["device_low"], arrays["device_high"]
    older = ResidualModel.from_arrays(arrays)
    assert older.device_low is None and older.device_high is None
    features = np.zeros((3, model.spec.n_features))
    assert not older.covered(np.zeros(3, dtype=np.int64), features, 0.1).any()
    live, _ = source.read(60)
    a = ResidualScorer(model, registry).score(live)
    b = ResidualScorer(older, registry).score(live)
    assert np.array_equal(a.z, b.z, equal_nan=True)
    assert np.all(np.nan_to_num(b.components[Detector.DRIFT]) == 0.0)
