"""Anomaly scores of the stream as events: `anomaly.started` / `anomaly.ended`.

`AnomalyStage.process(batch)` scores the batch's scored and load series with one
`AnomalyDetector` (roles.py says which), notes when the drivers moved, and turns the
detector's starts and ends into Events: a start unless a driver explains it (then its end is
dropped too, unless it crosses the start threshold afresh with nothing to explain that:
`_promote`), an end for every published start. It keeps the open anomalies with their latest
and highest scores, which the health reads. Pure and synchronous: the consumer runs it in a
worker thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from rackwatch.engine.anomaly import (
    AnomalyChange,
    AnomalyDetector,
    Detector,
    DetectorConfig,
    ResidualScorer,
    Scores,
)
from rackwatch.engine.intelligence.roles import Moves, Role, SeriesRoles
from rackwatch.model import Batch, Event, EventKind, Severity

EVERY_CROSSING = frozenset({"cpu_temperature_celsius", "chassis_temperature_celsius"})
"""Followers whose every fresh crossing of `on` in an explained anomaly is promoted (see
`_needs_a_new_high`)."""

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OpenAnomaly:
    """An anomaly that started and has not ended (published: not explained by a driver)."""

    series: int
    entity: str
    metric: str
    detector: str
    start_ms: int
    score: float
    """The newest sample's score."""
    peak: float
    z: float | None
    """z at the start (None: none, as for a NULL run)."""


def _rounded(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class AnomalyStage:
    def __init__(
        self,
        roles: SeriesRoles,
        config: DetectorConfig | None = None,
        *,
        explain_window_ms: int = 600_000,
        load_move_score: float = 0.5,
    ) -> None:
        self.roles = roles
        self.detector = AnomalyDetector(config)
        self.moves = Moves(explain_window_ms)
        self.load_move_score = load_move_score
        self.open: dict[int, OpenAnomaly] = {}
        self.residual: ResidualScorer | None = None
        """The learned physics model's scorer (None until a model is trained or loaded)."""
        self.open_residual: dict[int, OpenAnomaly] = {}
        """Residual anomalies, by their target series (a series can have one of each)."""
        self.open_drift: dict[int, OpenAnomaly] = {}
        """The residual's slow drifts, by their target series."""

        self._retired: list[OpenAnomaly] = []
        self.n_scored = 0
        """Samples scored since start."""
        self.n_explained = 0
        """Anomalies a driver's move explained (not published)."""
        self._explained: dict[int, int] = {}
        """Series in an explained anomaly -> when it started."""
        self._explained_peak: dict[int, float] = {}
        """Series in an explained anomaly -> its highest score so far."""
        self._latest = np.zeros(0)
        self._last_command = np.zeros(0)

    def process(self, batch: Batch) -> list[Event]:
        """Score `batch` (any series; the roles pick), return the anomaly events, time order."""
        roles = self.roles
        n = len(roles)
        if len(self._latest) < n:
            self._latest = _grown(self._latest, n, 0.0)
            self._last_command = _grown(self._last_command, n, np.nan)
        self._command_moves(batch)
        events = self._residual(batch)
        taken = batch.take(roles.mask(batch.series, Role.SCORED, Role.LOAD))
        if not len(taken):
            return events
        scores = self.detector.score(taken)
        self.n_scored += len(scores)
        self._load_moves(scores)
        events += [e for e in (self._change(c, scores) for c in scores.changes) if e is not None]
        events += self._promote(scores)
        self._follow_scores(scores)
        return events

    # --- the learned model -----------------------------------------------------------------

    def use_residual(self, scorer: ResidualScorer) -> None:
        """Score with `scorer` from the next batch on. The residual anomalies open under the
        old model end with the next batch (the new model starts from a clean state); the drift
        levels carry over, and so do the open drifts of devices the new model covers."""
        kept = set(scorer.model.entities)
        if self.residual is not None:
            scorer.carry_drift(self.residual.drift_states())
        carried = {sid: a for sid, a in self.open_drift.items() if a.entity in kept}
        self._retired += [*self.open_residual.values()]
        self._retired += [a for sid, a in self.open_drift.items() if sid not in carried]
        self.residual = scorer
        self.open_residual, self.open_drift = {}, carried

    def _residual(self, batch: Batch) -> list[Event]:
        events: list[Event] = []
        if self._retired and len(batch):
            at = int(batch.ts.min())
            for opened in self._retired:
                events.append(
                    self._event(opened, at, 0.0, opened.peak, EventKind.ANOMALY_ENDED, at)
                )
            self._retired = []
        if self.residual is None or not len(batch):
            return events
        scorer = self.residual
        scores = scorer.score(batch)
        self.n_scored += len(scores)
        for change in scores.changes:
            sid = change.series
            drift = change.detector is Detector.DRIFT
            book = self.open_drift if drift else self.open_residual
            if change.is_start:
                # a drift's z is its level (the newest: it moves slowly), a jump's the sample's
                z = scorer.drift_level(sid) if drift else _z_at(scores, sid, change.ts)
                opened = OpenAnomaly(
                    series=sid,
                    entity=self.roles.entity[sid],
                    metric=self.roles.metric[sid],
                    detector=change.detector.label,
                    start_ms=change.ts,
                    score=change.score,
                    peak=change.score,
                    z=_rounded(z, 2),
                )
                book[sid] = opened
                events.append(
                    self._event(
                        opened, change.ts, change.score, change.score, EventKind.ANOMALY_STARTED
                    )
                )
                continue
            found = book.pop(sid, None)
            if found is not None:
                peak = max(found.peak, change.peak_score)
                events.append(
                    self._event(
                        found, change.ts, change.score, peak, EventKind.ANOMALY_ENDED, change.ts
                    )
                )
        for book, detector in (
            (self.open_residual, Detector.RESIDUAL),
            (self.open_drift, Detector.DRIFT),
        ):
            component = scores.components[detector]
            for sid, found in list(book.items()):
                rows = np.flatnonzero(scores.series == sid)
                if len(rows):
                    latest = float(component[rows[-1]])
                    latest = latest if math.isfinite(latest) else found.score
                    book[sid] = replace(found, score=latest, peak=max(found.peak, latest))
        return events

    def all_open(self) -> list[OpenAnomaly]:
        return [*self.open.values(), *self.open_residual.values(), *self.open_drift.values()]

    # --- drivers ----------------------------------------------------------------------------

    def _command_moves(self, batch: Batch) -> None:
        rows = np.flatnonzero(self.roles.mask(batch.series, Role.COMMAND))
        if not len(rows):
            return
        series, ts, value = batch.series[rows], batch.ts[rows], batch.value[rows]
        order = np.lexsort((ts, series))
        series, ts, value = series[order], ts[order], value[order]
        finite = np.isfinite(value)
        series, ts, value = series[finite], ts[finite], value[finite]
        before = np.empty_like(value)
        before[1:] = value[:-1]
        first = np.ones(len(series), dtype=np.bool_)
        first[1:] = series[1:] != series[:-1]
        before[first] = self._last_command[series[first]]
        moved = np.isfinite(before) & (value != before)
        last = np.ones(len(series), dtype=np.bool_)
        last[:-1] = series[1:] != series[:-1]
        self._last_command[series[last]] = value[last]
        for sid, at in zip(series[moved].tolist(), ts[moved].tolist(), strict=True):
            self.moves.record(self.roles.entity[sid], at)

    def _load_moves(self, scores: Scores) -> None:
        moved = self.roles.mask(scores.series, Role.LOAD) & (scores.score >= self.load_move_score)
        if not moved.any():
            return
        pairs = set(zip(scores.series[moved].tolist(), scores.ts[moved].tolist(), strict=True))
        for sid, at in sorted(pairs, key=lambda p: p[1]):
            self.moves.record(self.roles.entity[sid], at)

    # --- changes ----------------------------------------------------------------------------

    def _change(self, change: AnomalyChange, scores: Scores) -> Event | None:
        sid = change.series
        if self.roles.role[sid] != Role.SCORED:
            return None  # a load series: its moves are recorded, never published
        if not change.is_start:
            if self._explained.pop(sid, None) is not None:
                self._explained_peak.pop(sid, None)
                return None
            opened = self.open.pop(sid, None)
            if opened is None:
                return None  # started before this consumer did (cannot happen) or explained
            peak = max(opened.peak, change.score)
            return self._event(
                opened, change.ts, change.score, peak, EventKind.ANOMALY_ENDED, change.ts
            )
        scope = self.roles.scope(sid)
        window = self.roles.window_ms(sid)
        if scope is not None and self.moves.explains(scope, change.start_ts, window):
            self._explained[sid] = change.start_ts
            self._explained_peak[sid] = change.score
            self.n_explained += 1
            return None
        return self._open(
            sid, change.ts, change.score, change.detector, _z_at(scores, sid, change.ts)
        )

    def _open(self, sid: int, ts: int, score: float, detector: Detector, z: float) -> Event:
        opened = OpenAnomaly(
            series=sid,
            entity=self.roles.entity[sid],
            metric=self.roles.metric[sid],
            detector=detector.label,
            start_ms=ts,
            score=score,
            peak=score,
            z=_rounded(z, 2),
        )
        self.open[sid] = opened
        return self._event(opened, ts, score, score, EventKind.ANOMALY_STARTED)

    def _event(
        self,
        opened: OpenAnomaly,
        ts: int,
        score: float,
        peak: float,
        kind: EventKind,
        end_ms: int | None = None,
    ) -> Event:
        attributes: dict[str, object] = {
            "metric": opened.metric,
            "score": _rounded(score, 4),
            "detector": opened.detector,
            "z": opened.z,
            "start": opened.start_ms,
            "peak": _rounded(peak, 4),
        }
        if end_ms is not None:
            attributes["duration_s"] = (end_ms - opened.start_ms) / 1000.0
        return Event(
            ts=ts,
            kind=str(kind),
            entity=opened.entity,
            severity=Severity.INFO if end_ms is not None else Severity.WARNING,
            attributes=attributes,
        )

    def _promote(self, scores: Scores) -> list[Event]:
        """An explained anomaly that crosses `on` afresh with no driver move to explain the
        new crossing becomes a published one (a fan that stops while its rpm still settles
        after a level change): a lasting effect of the move stays explained, a new fault
        does not hide behind it."""
        if not self._explained:
            return []
        explained = np.fromiter(self._explained, dtype=np.int64)
        rows = np.flatnonzero(np.isin(scores.series, explained))
        if not len(rows):
            return []
        rows = rows[np.lexsort((scores.ts[rows], scores.series[rows]))]
        on = self.detector.config.on
        events: list[Event] = []
        previous_sid, previous = -1, 0.0
        for r in rows.tolist():
            sid, ts, score = int(scores.series[r]), int(scores.ts[r]), float(scores.score[r])
            if sid != previous_sid:
                previous_sid, previous = sid, float(self._latest[sid])
            since = self._explained.get(sid)
            fresh = since is not None and ts > since and score >= on > previous
            previous = score
            if since is None:  # promoted earlier in this batch
                continue
            peak = self._explained_peak.get(sid, 0.0)
            self._explained_peak[sid] = max(peak, score)
            if fresh and score <= peak and self._needs_a_new_high(sid):
                continue
            if not fresh:
                continue
            scope = self.roles.scope(sid)
            window = self.roles.window_ms(sid)
            if scope is not None and self.moves.explains(scope, ts, window):
                continue
            del self._explained[sid]
            self._explained_peak.pop(sid, None)
            detector = Detector(int(scores.detector[r]))
            events.append(self._open(sid, ts, score, detector, float(scores.z[r])))
        return events

    def _needs_a_new_high(self, sid: int) -> bool:
        """A device-scoped follower (power, temperatures) stays off its old level as long as
        the load that moved it (a GPU job holds for hours) and its score wanders round `on`:
        only a new high is a new fault. A fan's rpm (its own scope) settles in seconds, so
        any fresh crossing counts (a fan that stops mid-settling); so do the CPU and chassis
        temperatures', the probes a slow sensor drift is told by: a drift shows as crossings
        that are no new high (`rackwatch evaluate` found 11 drifts in 15 instead of 12
        otherwise)."""
        return self.roles.window_ms(sid) is None and self.roles.metric[sid] not in EVERY_CROSSING

    def _follow_scores(self, scores: Scores) -> None:
        """Newest score per series; the open anomalies' newest and highest scores."""
        series = scores.series[::-1]
        _, last = np.unique(series, return_index=True)
        newest = len(series) - 1 - last
        score = scores.score[newest]
        self._latest[scores.series[newest]] = np.where(np.isfinite(score), score, 0.0)
        if not self.open:
            return
        is_open = np.zeros(len(self._latest), dtype=np.bool_)
        is_open[list(self.open)] = True
        rows = is_open[scores.series] & np.isfinite(scores.score)
        peaks = np.zeros(len(self._latest))
        np.maximum.at(peaks, scores.series[rows], scores.score[rows])
        for sid, found in list(self.open.items()):
            peak = max(found.peak, float(peaks[sid]))
            self.open[sid] = replace(found, score=float(self._latest[sid]), peak=peak)

    def entity_scores(self) -> dict[str, dict[str, float]]:
        """Per entity, the newest score of each metric with an open anomaly (what the health
        counts: explained anomalies and load series are left out)."""
        found: dict[str, dict[str, float]] = {}
        for a in self.all_open():
            scores = found.setdefault(a.entity, {})
            scores[a.metric] = max(a.score, scores.get(a.metric, 0.0))
        return found


def _z_at(scores: Scores, series: int, ts: int) -> float:
    """z of the row of `series` at `ts` (NaN: none); a few array passes per change, and
    changes are few."""
    rows = np.flatnonzero((scores.series == series) & (scores.ts == ts))
    return float(scores.z[rows[-1]]) if len(rows) else math.nan


def _grown(values: F64, n: int, fill: float) -> F64:
    extra = max(n, 2 * len(values)) - len(values)
    return np.concatenate([values, np.full(extra, fill)])
