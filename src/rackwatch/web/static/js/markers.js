// Markers on the charts: injected faults (a band while the fault lasts) and alert occurrences
// (a line where an alert fired or escalated), from GET /api/v1/events. charts.js draws them
// and shows what they are when the pointer is over one.

import { getJSON } from "./api.js";
import { formatDuration, formatTime, severityName } from "./format.js";

export const MARKER_KINDS = ["fault.injected", "alert.fired", "alert.escalated"];
const MAX_EVENTS = 2_000;

// Is `path` the entity, under it, or above it (a rack's fault concerns its servers)?
function related(path, entity) {
  if (!entity) return true;
  return (
    path === entity ||
    path.startsWith(`${entity}/`) ||
    entity.startsWith(`${path}/`) ||
    // Room-wide devices (the CRAC) act on every server.
    path === "room" ||
    path.startsWith("room/")
  );
}

export function markerOf(event) {
  const a = event.attributes ?? {};
  const severity = severityName(event.severity);
  if (event.kind === "fault.injected") {
    const what = String(a.fault ?? a.kind ?? "fault").replaceAll("_", " ");
    const until = event.end_ts_ms ? `until ${formatTime(event.end_ts_ms)}` : "ongoing";
    const lasts = Number.isFinite(a.duration_s) ? ` (${formatDuration(a.duration_s)})` : "";
    return {
      kind: event.kind,
      type: "fault",
      ts: event.ts_ms,
      end: event.end_ts_ms ?? null,
      level: severity,
      entity: event.entity,
      text: `Fault: ${what} on ${event.entity}, ${formatTime(event.ts_ms)} ${until}${lasts}`,
    };
  }
  const level = String(a.level ?? severity).toLowerCase();
  const verb = event.kind === "alert.escalated" ? "escalated" : "fired";
  const rule = a.rule ? `${a.rule} ` : "";
  return {
    kind: event.kind,
    type: "alert",
    ts: event.ts_ms,
    end: null,
    level: level === "critical" ? "critical" : "warning",
    entity: event.entity,
    text: `Alert ${rule}${verb} (${level}) on ${event.entity}, ${formatTime(event.ts_ms)}`,
  };
}

// Markers for [from, to] that concern `entity` (null: the whole room).
export async function loadMarkers(from, to, entity = null) {
  const { events } = await getJSON("/events", {
    from: Math.floor(from),
    to: Math.ceil(to) + 1,
    kind: MARKER_KINDS,
    limit: MAX_EVENTS,
  });
  return (events ?? [])
    .filter((e) => MARKER_KINDS.includes(e.kind) && related(e.entity, entity))
    .map(markerOf);
}
