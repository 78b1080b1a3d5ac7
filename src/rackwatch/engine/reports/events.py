"""The alerts, incidents and faults of a report's period, with their durations, from the
stored events.

- alerts: rebuilt from their `alert.*` events (engine/alerts/views.py); one row per alert
  that was firing at some point of the period, from its first fire to its resolution;
- incidents: the `incident.*` events folded by incident id, from its start to its close;
- faults: the `fault.injected` spans (the twin's injected faults; real machines have none).

A row's `end` is None while it was still open at the end of the period, and its duration is
then None too. Lists hold at most `MAX_LISTED` rows each (the counts are complete); the
store is read a day at a time, and a period holding more alert events than the alert
history reads is said in a note instead of listed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from rackwatch.engine.alerts.views import HistoryTooLarge, read_history
from rackwatch.engine.reports.content import EventRow, EventsSection
from rackwatch.model import EventKind, Severity
from rackwatch.store.base import Store

MAX_LISTED = 1000
DAY_MS = 86_400_000
INCIDENT_KINDS = (
    str(EventKind.INCIDENT_OPENED),
    str(EventKind.INCIDENT_UPDATED),
    str(EventKind.INCIDENT_CLOSED),
)


def _iso(ms: int | None, zone: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="seconds")


def _row(
    kind: str,
    entity: str,
    what: str,
    severity: str,
    start_ms: int,
    end_ms: int | None,
    detail: str,
    zone: ZoneInfo,
    period_end_ms: int,
) -> EventRow:
    if end_ms is not None and end_ms > period_end_ms:
        end_ms = None  # it ended after the period: open at its end
    return EventRow(
        kind=kind,
        entity=entity,
        what=what,
        severity=severity,
        start=_iso(start_ms, zone) or "",
        start_ms=start_ms,
        end=_iso(end_ms, zone),
        end_ms=end_ms,
        duration_s=None if end_ms is None else (end_ms - start_ms) / 1000,
        detail=detail,
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def alert_rows(
    store: Store, start_ms: int, end_ms: int, zone: ZoneInfo
) -> tuple[list[EventRow], str | None]:
    try:
        history = read_history(store, start_ms, end_ms)
    except HistoryTooLarge as exc:
        return [], f"alerts not listed: {exc}"
    rows = []
    for alert in history.alerts.values():
        fired = _int(alert.get("fired_ts_ms")) or _int(alert.get("ts_ms")) or start_ms
        resolved = _int(alert.get("resolved_ts_ms"))
        rows.append(
            _row(
                "alert",
                str(alert.get("entity", "")),
                str(alert.get("rule", "")),
                str(alert.get("level", "")).lower(),
                fired,
                resolved,
                str(alert.get("message", "")),
                zone,
                end_ms,
            )
        )
    return sorted(rows, key=lambda r: (r.start_ms, r.entity)), None


def fold_incidents(events: Iterable[Any]) -> list[dict[str, Any]]:
    """One dict per incident id: its newest attributes, worst severity, start and end."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        attrs: Mapping[str, Any] = event.attributes
        key = str(attrs.get("id", f"{event.entity}@{event.ts}"))
        held = found.setdefault(key, {"severity": Severity.INFO, "end": None})
        held.update(
            entity=event.entity,
            cause=str(attrs.get("cause", "")),
            nature=str(attrs.get("nature", "")),
            start=_int(attrs.get("start")) or held.get("start") or event.ts,
            n_anomalies=_int(attrs.get("n_anomalies")) or 0,
        )
        if event.kind == EventKind.INCIDENT_CLOSED:
            held["end"] = _int(attrs.get("end")) or event.ts
        else:
            held["severity"] = max(held["severity"], Severity(event.severity))
    return list(found.values())


def incident_rows(store: Store, start_ms: int, end_ms: int, zone: ZoneInfo) -> list[EventRow]:
    events = []
    at = start_ms
    while at < end_ms:
        stop = min(end_ms, at + DAY_MS)
        events.extend(store.events(at, stop, kinds=INCIDENT_KINDS))
        at = stop
    rows = [
        _row(
            "incident",
            inc["entity"],
            inc["cause"],
            Severity(inc["severity"]).name.lower(),
            inc["start"],
            inc["end"],
            f"{inc['nature']}, {inc['n_anomalies']} anomalies",
            zone,
            end_ms,
        )
        for inc in fold_incidents(sorted(events, key=lambda e: e.ts))
    ]
    return sorted(rows, key=lambda r: (r.start_ms, r.entity))


def fault_rows(store: Store, start_ms: int, end_ms: int, zone: ZoneInfo) -> list[EventRow]:
    seen: dict[tuple[int, str, str], EventRow] = {}
    for event in store.events(start_ms, end_ms, kinds=[str(EventKind.FAULT_INJECTED)]):
        fault = str(event.attributes.get("fault", ""))
        detail = ", ".join(
            f"{k}={v}" for k, v in sorted(event.attributes.items()) if k not in ("fault",)
        )[:200]
        seen[(event.ts, event.entity, fault)] = _row(
            "fault",
            event.entity,
            fault,
            Severity(event.severity).name.lower(),
            event.ts,
            event.end_ts,
            detail,
            zone,
            end_ms,
        )
    return sorted(seen.values(), key=lambda r: (r.start_ms, r.entity))


def events_section(store: Store, start_ms: int, end_ms: int, zone: ZoneInfo) -> EventsSection:
    """Every alert, incident and fault of [start_ms, end_ms). Blocking (reads the store)."""
    alerts, note = alert_rows(store, start_ms, end_ms, zone)
    incidents = incident_rows(store, start_ms, end_ms, zone)
    faults = fault_rows(store, start_ms, end_ms, zone)
    notes = [] if note is None else [note]
    for name, rows in (("alerts", alerts), ("incidents", incidents), ("faults", faults)):
        if len(rows) > MAX_LISTED:
            notes.append(f"{len(rows)} {name}: the first {MAX_LISTED} are listed")
    return EventsSection(
        n_alerts=len(alerts),
        n_incidents=len(incidents),
        n_faults=len(faults),
        alerts=alerts[:MAX_LISTED],
        incidents=incidents[:MAX_LISTED],
        faults=faults[:MAX_LISTED],
        notes=notes,
    )
