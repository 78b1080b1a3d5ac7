"""Versions of the learned residual model on disk (`<data_dir>/models/`), so that a restart
scores with the last model instead of waiting hours for a new one.

A version is two files, written in this order, each to a temporary file that is fsynced and
then renamed over its name (a crash leaves either the whole file or none):

    model-000007.npz    the arrays of `ResidualModel.to_arrays` (numbers and strings only)
    model-000007.json   its manifest: version, when it was trained and from what, devices,
                        sigma summary, and the SHA-256 of the .npz

The manifest is the commit mark: an .npz without one is an unfinished save, not a version.
Nothing is ever unpickled (`allow_pickle=False`): a model file is data, checked on load
(digest, dtypes, shapes, finite numbers), and a file that fails any check is skipped with a
warning, the previous version used instead. Numbers only grow: the next version is one more
than any number in the directory, so a damaged newest file is never overwritten. The newest
`keep` versions are kept; older ones are deleted after each save.

Cost: a model of 2,000 devices is about 200 kB; saving or loading one takes milliseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rackwatch.engine.anomaly.residual import ResidualModel

log = logging.getLogger(__name__)

FORMAT = 1
"""Manifest format; a manifest of another format is skipped."""
_NAME = re.compile(r"model-(\d{6,})\.(npz|json)")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One saved model, as its manifest describes it. Times are ms since the epoch: when it
    was trained (wall clock) and the span of the samples it was fitted from."""

    version: int
    trained_at_ms: int
    trained_from_ms: int
    trained_to_ms: int
    n_rows: int
    """Samples read from the store for the fit."""
    n_fitted_rows: int
    """Complete rows (a target sample with every input) the fit kept, all devices."""
    n_devices: int
    target: str
    sigma_min: float
    sigma_median: float
    sigma_max: float
    """The devices' residual sigmas, in the target's unit."""
    sha256: str
    """Digest of the .npz file."""

    @property
    def label(self) -> str:
        """The version as shown and handed to the scorer: "v7"."""
        return f"v{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> ModelVersion:
        """Checked: every field present with its type (ValueError otherwise)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a model manifest of format {FORMAT}")
        values: dict[str, Any] = {}
        for name, kind in _FIELDS.items():
            value = data.get(name)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(
                    f"model manifest: {name!r} is missing or of the wrong type "
                    f"({kind.__name__} wanted)"
                )
            values[name] = value
        return cls(**values)


_FIELDS: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str}[str(f.type)] for f in fields(ModelVersion)
}
"""Each manifest field's JSON type (the annotations are strings here)."""


class ModelStore:
    """The model versions of one directory (created private, 0700, on the first save).

    `save` may be called from any thread (one save at a time); `latest` and `versions` only
    read. Meant for one process per directory, as the data directory is."""

    def __init__(self, directory: Path, keep: int = 10) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self._lock = threading.Lock()

    def save(
        self,
        model: ResidualModel,
        *,
        trained_at_ms: int,
        trained_from_ms: int,
        trained_to_ms: int,
        n_rows: int,
    ) -> ModelVersion:
        """Write `model` as the next version, then delete all but the newest `keep`. Raises
        ValueError for a model without devices, OSError when the directory cannot be
        written (nothing half-written is left as a version)."""
        if not model.entities:
            raise ValueError("a model that fits no device is not saved")
        buffer = io.BytesIO()
        arrays: dict[str, Any] = model.to_arrays()  # strings and numbers: nothing pickled
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        sigma = model.sigma
        with self._lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            number = max(self._numbers(complete=False), default=0) + 1
            version = ModelVersion(
                version=number,
                trained_at_ms=int(trained_at_ms),
                trained_from_ms=int(trained_from_ms),
                trained_to_ms=int(trained_to_ms),
                n_rows=int(n_rows),
                n_fitted_rows=int(model.n_rows.sum()),
                n_devices=len(model.entities),
                target=model.spec.target,
                sigma_min=float(sigma.min()),
                sigma_median=float(np.median(sigma)),
                sigma_max=float(sigma.max()),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            _write_atomic(self._path(number, "npz"), data)
            manifest = json.dumps(version.to_json(), indent=1, sort_keys=True) + "\n"
            _write_atomic(self._path(number, "json"), manifest.encode())
            self._prune()
        return version

    def versions(self) -> list[ModelVersion]:
        """Every version whose manifest reads back, oldest first (the .npz is not checked:
        `latest` does that)."""
        found = []
        for number in sorted(self._numbers(complete=True)):
            try:
                found.append(self._manifest(number))
            except (OSError, ValueError) as exc:
                log.warning("model version %d: its manifest is unreadable (%s)", number, exc)
        return found

    def latest(self) -> tuple[ResidualModel, ModelVersion] | None:
        """The newest version that reads back whole and passes every check, with its
        manifest; None when there is none. A damaged version is skipped with a warning."""
        for number in sorted(self._numbers(complete=True), reverse=True):
            try:
                version = self._manifest(number)
                return self._load(version), version
            except Exception as exc:  # any damage: the start goes on with an older version
                log.warning(
                    "model version %d in %s cannot be used (%s: %s); trying the one before",
                    number,
                    self.directory,
                    type(exc).__name__,
                    exc,
                )
        return None

    def _load(self, version: ModelVersion) -> ResidualModel:
        data = self._path(version.version, "npz").read_bytes()
        if hashlib.sha256(data).hexdigest() != version.sha256:
            raise ValueError("the .npz file does not match its manifest's digest")
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            model = ResidualModel.from_arrays(arrays)
        if len(model.entities) != version.n_devices:
            raise ValueError("the model's devices do not match its manifest")
        return model

    def _manifest(self, number: int) -> ModelVersion:
        text = self._path(number, "json").read_text(encoding="utf-8")
        version = ModelVersion.from_json(json.loads(text))
        if version.version != number:
            raise ValueError(f"the manifest names version {version.version}")
        return version

    def _path(self, number: int, suffix: str) -> Path:
        return self.directory / f"model-{number:06d}.{suffix}"

    def _numbers(self, *, complete: bool) -> set[int]:
        """Version numbers of the directory's files: those with a manifest (`complete`), or
        any file's."""
        if not self.directory.is_dir():
            return set()
        numbers = set()
        for path in self.directory.iterdir():
            match = _NAME.fullmatch(path.name)
            if match is not None and (not complete or match.group(2) == "json"):
                numbers.add(int(match.group(1)))
        return numbers

    def _prune(self) -> None:
        """Delete every file but the newest `keep` versions' (and unfinished saves)."""
        kept = set(sorted(self._numbers(complete=True))[-self.keep :])
        for path in sorted(self.directory.iterdir()):
            match = _NAME.fullmatch(path.name)
            stale = match is not None and int(match.group(1)) not in kept
            if stale or path.name.endswith(_TEMPORARY):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


_TEMPORARY = ".tmp"


def _write_atomic(path: Path, data: bytes) -> None:
    """`data` as `path`, whole or not at all: a private temporary file, fsynced, renamed."""
    temporary = path.with_name(f".{path.name}{_TEMPORARY}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
