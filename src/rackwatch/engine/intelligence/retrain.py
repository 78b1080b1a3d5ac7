"""Retraining the residual model of every device from the store, on a schedule (issue 10).

Wiring (app.py)::

    retrainer = Retrainer(store, ModelStore(data_dir / "models"), intelligence)
    task = asyncio.create_task(retrainer.run())   # until cancelled
    ...
    task.cancel()                                 # at stop, before the store closes

At start the task loads the newest saved version (`ModelStore.latest`) and hands it to the
scorer (`use_model`), so a restart scores at once with the last model. Then, every
`interval_s` of wall time, a worker thread reads the last `window_s` of raw samples of the
target and input metrics (`ResidualSpec`: CPU temperature; utilisation, power, inlet,
airflow), fits `ResidualModel`, saves it as a new version and the loop hands it over. The
event loop that drives the fans never waits on the store or the fit.

"The last `window_s`" ends at the newest stored sample of the target, not at the wall clock:
the twin's clock runs ahead of it at `--speed` > 1, and a data directory may hold a past
period. The first training waits until some device has `min_history_s` of every metric
(checked every `retry_s`). At restart, the next training is due `interval_s` after the loaded
version was trained. A failed training (store, fit, disk) is logged, reported by `status()`
and tried again at the next interval; it never ends the task.

Cost: the fit reads every sample of the window (about 20 bytes each in memory, a few times
over while fitting); on the 20-server room 24 h are 1.7 M samples and take a few seconds of
one core every 3 h. A larger room has its window shortened so that at most `max_samples` are
read (estimated from the last 10 minutes' rate), and the shortening is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rackwatch.engine.anomaly.residual import ResidualModel, ResidualSpec
from rackwatch.engine.intelligence.models import ModelStore, ModelVersion
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.store.base import Latest, Query, QueryResult, Tier

log = logging.getLogger(__name__)

HOUR_S = 3600.0
PROBE_MS = 600_000
"""The span whose sample count estimates the window's (for `max_samples`)."""


class ModelUser(Protocol):
    """Who scores with the model (`Intelligence.use_model`): thread-safe, applied before its
    next batch."""

    def use_model(self, model: ResidualModel, version: str, trained_at_ms: int) -> None: ...


class HistoryStore(Protocol):
    """What the retrainer reads of the store (`DuckDBStore`); called from a worker thread."""

    def query(self, q: Query) -> QueryResult: ...

    def latest(self, entity: str = ..., metrics: str | Sequence[str] | None = ...) -> Latest: ...


@dataclass(frozen=True, slots=True)
class _Trained:
    model: ResidualModel
    version: ModelVersion
    n_versions: int


@dataclass(frozen=True, slots=True)
class _NotYet:
    """Nothing trained, and why (not enough history, no device with every metric)."""

    reason: str
    retry_soon: bool
    """Retry after `retry_s` (the history grows) rather than `interval_s`."""


_Outcome = _Trained | _NotYet


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Retrainer:
    """Loads the last model at start, then retrains it every `interval_s` (see the module
    docstring). `interval_s` None: load the last model and never train."""

    def __init__(
        self,
        store: HistoryStore,
        models: ModelStore,
        user: ModelUser,
        *,
        interval_s: float | None = 3 * HOUR_S,
        window_s: float = 24 * HOUR_S,
        min_history_s: float = HOUR_S,
        retry_s: float = 60.0,
        max_samples: int = 20_000_000,
        spec: ResidualSpec | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if interval_s is not None and not interval_s > 0:
            raise ValueError(f"interval_s must be positive (or None: never), got {interval_s}")
        if not window_s > 0 or not 0 <= min_history_s <= window_s:
            raise ValueError(
                f"want window_s > 0 and 0 <= min_history_s <= window_s, got window_s="
                f"{window_s}, min_history_s={min_history_s}"
            )
        if not retry_s > 0 or max_samples < 1:
            raise ValueError("retry_s must be positive and max_samples at least 1")
        self.store = store
        self.models = models
        self.user = user
        self.interval_s = interval_s
        self.window_s = window_s
        self.min_history_s = min_history_s
        self.retry_s = retry_s
        self.max_samples = max_samples
        self.spec = spec or ResidualSpec()
        self.clock_ms = clock_ms
        self.stop_timeout_s = stop_timeout_s
        self.current: ModelVersion | None = None
        """The version in use (loaded at start or trained since)."""
        self.last_error: str | None = None
        """The last failure, cleared by the next success."""
        self.last_outcome: str = "not started"
        self.n_trainings = 0
        self.n_errors = 0
        self._n_versions = 0
        self._next_due_ms: int | None = None
        self._wake = asyncio.Event()
        self._stopping = threading.Event()

    # --- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Load the last model, then train on schedule until cancelled."""
        try:
            await self._load()
            if self.interval_s is None:
                self.last_outcome = "retraining off"
                return
            delay = self._first_delay_s(self.interval_s)
            while True:
                self._next_due_ms = self.clock_ms() + round(delay * 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                self._wake.clear()
                delay = await self._attempt(self.interval_s)
        finally:
            self._next_due_ms = None

    def request(self) -> None:
        """Train now instead of at the next due time (from the event loop's thread)."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """What the API reports: the version in use and the schedule."""
        current = self.current
        return {
            "version": None if current is None else current.label,
            "trained_at_ms": None if current is None else current.trained_at_ms,
            "trained_from_ms": None if current is None else current.trained_from_ms,
            "trained_to_ms": None if current is None else current.trained_to_ms,
            "n_devices": 0 if current is None else current.n_devices,
            "next_due_ms": self._next_due_ms,
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "n_versions": self._n_versions,
            "n_trainings": self.n_trainings,
            "n_errors": self.n_errors,
            "interval_s": self.interval_s,
            "window_s": self.window_s,
        }

    async def _load(self) -> None:
        try:
            found, n_versions = await asyncio.to_thread(self._read_latest)
        except Exception as exc:  # an unreadable directory: train from scratch instead
            self._failed("loading the last model", exc)
            return
        self._n_versions = n_versions
        if found is None:
            self.last_outcome = "no saved model"
            return
        model, version = found
        try:
            self.user.use_model(model, version.label, version.trained_at_ms)
        except Exception as exc:
            self._failed(f"handing over the saved model {version.label}", exc)
            return
        self.current = version
        self.last_outcome = f"loaded {version.label}"
        log.info(
            "residual model %s loaded (%d devices, trained %s)",
            version.label,
            version.n_devices,
            _utc(version.trained_at_ms),
        )

    def _read_latest(self) -> tuple[tuple[ResidualModel, ModelVersion] | None, int]:
        return self.models.latest(), len(self.models.versions())

    def _first_delay_s(self, interval_s: float) -> float:
        """Seconds to the first training: at once, or `interval_s` after the loaded one."""
        if self.current is None:
            return 0.0
        due_ms = self.current.trained_at_ms + interval_s * 1000
        return min(max(0.0, (due_ms - self.clock_ms()) / 1000), interval_s)

    async def _attempt(self, interval_s: float) -> float:
        """One training in a worker thread, handed over when it succeeds; the delay to the
        next one."""
        self._stopping.clear()
        work = asyncio.ensure_future(asyncio.to_thread(self._train, self._stopping))
        try:
            outcome = await asyncio.shield(work)
            if isinstance(outcome, _NotYet):
                self.last_outcome = outcome.reason
                # waiting for history is retried every minute: not worth a line each time
                level = logging.DEBUG if outcome.retry_soon else logging.INFO
                log.log(level, "residual model not trained: %s", outcome.reason)
                return min(self.retry_s, interval_s) if outcome.retry_soon else interval_s
            version = outcome.version
            self._n_versions = outcome.n_versions
            self.user.use_model(outcome.model, version.label, version.trained_at_ms)
        except asyncio.CancelledError:
            await self._abandon(work)
            raise
        except Exception as exc:
            self._failed(f"retraining (next try in {interval_s:g} s)", exc)
            return interval_s
        self.current = version
        self.n_trainings += 1
        self.last_error = None
        self.last_outcome = f"trained {version.label}"
        log.info(
            "residual model %s trained on %d devices from %s to %s (%d samples)",
            version.label,
            version.n_devices,
            _utc(version.trained_from_ms),
            _utc(version.trained_to_ms),
            version.n_rows,
        )
        return interval_s

    async def _abandon(self, work: asyncio.Future[_Outcome]) -> None:
        """At cancel: tell the thread to stop at its next check (it saves nothing then) and
        wait for it a while, so that the store is not closed under its query."""
        self._stopping.set()
        work.add_done_callback(_retrieve)
        with contextlib.suppress(BaseException):
            await asyncio.wait({work}, timeout=self.stop_timeout_s)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.n_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_outcome = "failed"
        log.error("%s failed", what, exc_info=exc)

    # --- the worker thread's part -------------------------------------------------------------

    def _train(self, stopping: threading.Event) -> _Outcome:
        """Read the window, fit, save. Blocking: runs in a worker thread."""
        spec = self.spec
        metrics = [spec.target, *spec.inputs]
        newest = self.store.latest(metrics=[spec.target]).ts
        if not len(newest):
            return _NotYet(f"no {spec.target} samples stored yet", retry_soon=True)
        end_ms = int(newest.max()) + 1
        start_ms = end_ms - self._window_ms(end_ms, metrics)
        result = self.store.query(Query(start_ms, end_ms, metrics=metrics, tier=Tier.RAW))
        covered_ms = history_ms(result, metrics)
        if covered_ms < self.min_history_s * 1000:
            return _NotYet(
                f"{covered_ms / 60_000:.0f} min of history with every metric of a device, "
                f"{self.min_history_s / 60:.0f} min wanted",
                retry_soon=True,
            )
        if stopping.is_set():
            return _NotYet("stopping", retry_soon=False)
        batch, registry = as_batch(result)
        model = ResidualModel.fit(batch, registry, spec)
        if not model.entities:
            return _NotYet(
                f"no device had {spec.min_rows} complete rows of {', '.join(metrics)}",
                retry_soon=False,
            )
        if stopping.is_set():
            return _NotYet("stopping", retry_soon=False)
        version = self.models.save(
            model,
            trained_at_ms=self.clock_ms(),
            trained_from_ms=int(result.ts.min()),
            trained_to_ms=int(result.ts.max()),
            n_rows=len(result),
        )
        return _Trained(model, version, len(self.models.versions()))

    def _window_ms(self, end_ms: int, metrics: Sequence[str]) -> int:
        """`window_s`, shortened so that about `max_samples` at most are read (but never
        below `min_history_s`)."""
        window_ms = round(self.window_s * 1000)
        probe_ms = min(window_ms, PROBE_MS)
        recent = self.store.query(Query(end_ms - probe_ms, end_ms, metrics=metrics, tier=Tier.RAW))
        expected = len(recent) * window_ms / probe_ms
        if expected <= self.max_samples:
            return window_ms
        floor_ms = max(probe_ms, round(self.min_history_s * 1000))
        shorter = min(window_ms, max(floor_ms, int(window_ms * self.max_samples / expected)))
        log.info(
            "residual model: %.0f samples expected in %g h; training on the last %.1f h",
            expected,
            window_ms / 3_600_000,
            shorter / 3_600_000,
        )
        return shorter


def history_ms(result: QueryResult, metrics: Sequence[str]) -> int:
    """The longest span any one entity has samples of every metric in `metrics` (from its
    latest first sample to its earliest last sample); 0 when none has them all."""
    counts = np.diff(result.offsets)
    wanted = set(metrics)
    spans: dict[str, list[tuple[int, int]]] = {}
    for i, key in enumerate(result.keys):
        if counts[i] and key.metric in wanted:
            lo, hi = int(result.offsets[i]), int(result.offsets[i + 1])
            spans.setdefault(key.entity, []).append((int(result.ts[lo]), int(result.ts[hi - 1])))
    best = 0
    for ranges in spans.values():
        if len(ranges) == len(wanted):
            best = max(best, min(hi for _, hi in ranges) - max(lo for lo, _ in ranges))
    return best


def as_batch(result: QueryResult) -> tuple[Batch, SeriesRegistry]:
    """A raw query's rows as one Batch, with a registry of its own series (ids 0..n-1)."""
    series = np.repeat(np.arange(len(result.keys), dtype=np.int32), np.diff(result.offsets))
    return Batch.of(result.ts, series, result["value"]), SeriesRegistry(result.keys)


def _retrieve(work: asyncio.Future[_Outcome]) -> None:
    """Read an abandoned thread's outcome, so that its error is not reported as lost."""
    if not work.cancelled():
        work.exception()


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
