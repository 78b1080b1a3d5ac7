// Page furniture shared by the pages: the clock, the scenario chip, the event feed, a host's
// online pill and meters, and two small helpers (`el`, `frameQueue`).

import { formatAgo, formatDuration, formatTime, isMissing, severityName } from "./format.js";

const KIND_TEXT = {
  "fault.injected": "Fault injected",
  "fault.cleared": "Fault cleared",
  "command.applied": "Command applied",
  "command.rejected": "Command rejected",
  "source.unavailable": "Source unavailable",
  "source.recovered": "Source recovered",
  "alert.fired": "Alert",
  "alert.escalated": "Alert escalated",
  "alert.acknowledged": "Alert acknowledged",
  "alert.resolved": "Alert resolved",
  "state.changed": "State changed",
  "usage.changed": "Usage changed",
  "control.fan_failover": "Fan failover",
  "control.fan_recovered": "Fan recovered",
  "control.failsafe": "Fail-safe",
  "control.failsafe_cleared": "Fail-safe cleared",
  "control.mode_changed": "Fan mode changed",
  "anomaly.started": "Anomaly",
  "anomaly.ended": "Anomaly ended",
  "prediction.fan_failure": "Fan failure predicted",
  "prediction.cleared": "Prediction withdrawn",
  "incident.opened": "Incident",
  "incident.updated": "Incident updated",
  "incident.closed": "Incident closed",
  "job.started": "Job started",
  "job.ended": "Job ended",
};

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// `draw` at most once a frame however often it is asked for (a fast twin sends several
// messages a second): returns the function that asks.
export function frameQueue(draw) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };
}

// A thin bar under a percentage: the figure says the value, the bar is a second cue (its
// colour a third: at the default alert levels, 80 and 90 %).
export function meter(ratio, label = "") {
  const bar = el("span", "meter");
  bar.setAttribute("aria-hidden", "true");
  const fill = el("span", "meter-fill");
  const known = !isMissing(ratio);
  fill.style.width = `${known ? (Math.max(0, Math.min(1, ratio)) * 100).toFixed(1) : 0}%`;
  if (known) fill.dataset.level = ratio >= 0.9 ? "crit" : ratio >= 0.8 ? "warn" : "ok";
  bar.append(fill);
  if (label) bar.title = label;
  return bar;
}

// "online" or "offline" in a word (colour is a second cue), and when it was last heard.
export function onlinePill(online) {
  const pill = el("span", "host-status", online ? "online" : "offline");
  pill.dataset.online = String(online);
  return pill;
}

export function lastSeenText(lastSeenMs, nowMs) {
  return lastSeenMs === null ? "never reported" : `last seen ${formatAgo(nowMs - lastSeenMs)}`;
}

// Shows the twin's time of the newest sample; it can run many times faster than the wall clock.
export function setClock(tsMs) {
  const clock = document.getElementById("clock");
  if (clock && tsMs > 0) clock.textContent = `Data time ${formatTime(tsMs)}`;
}

export function showScenario(status) {
  const chip = document.getElementById("scenario");
  if (!chip || !status?.scenario) return;
  chip.textContent = `scenario: ${status.scenario}`;
  chip.hidden = false;
}

// The server an entity belongs to (itself, or the server above a fan), for linking to its page.
export function serverOf(path, inventory) {
  const servers = new Set(inventory.filter((e) => e.kind === "server").map((e) => e.path));
  for (let p = path; p; p = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : null) {
    if (servers.has(p)) return p;
  }
  return null;
}

function describe(event) {
  const a = event.attributes ?? {};
  const parts = [];
  // An anomaly: which series, which detector, how strong; a prediction: when, within what.
  if (a.metric && a.detector) {
    parts.push(`${a.metric} ${String(a.detector).replaceAll("_", " ")}`);
    if (Number.isFinite(a.peak)) parts.push(`peak score ${a.peak.toFixed(2)}`);
  }
  if (Number.isFinite(a.eta_s)) {
    const high = Number.isFinite(a.high_s) ? formatDuration(a.high_s) : "?";
    const within = Number.isFinite(a.low_s) ? ` (${formatDuration(a.low_s)} to ${high})` : "";
    parts.push(a.eta_s === 0 ? "has failed" : `fails in ${formatDuration(a.eta_s)}${within}`);
  }
  // An incident: its diagnosis (the action follows below).
  if (a.scope && a.nature && a.cause) {
    const nature = a.nature === "sensor" ? "sensor fault" : "real problem";
    parts.push(`${a.scope} · ${nature} · ${String(a.cause).replaceAll("_", " ")}`);
  }
  if (a.fault) parts.push(String(a.fault).replaceAll("_", " "));
  if (a.action) parts.push(String(a.action));
  if (a.params && typeof a.params === "object") {
    parts.push(
      Object.entries(a.params)
        .map(([k, v]) => `${k} ${v}`)
        .join(", "),
    );
  }
  // A state change reads "ok → failed", then why.
  if (a.from && a.to) parts.push(`${a.from} → ${a.to}`);
  if (a.message) parts.push(String(a.message));
  else if (a.reason) parts.push(String(a.reason));
  if (a.issued_by || a.by) parts.push(`by ${a.issued_by ?? a.by}`);
  if (Number.isFinite(a.duration_s)) parts.push(`for ${formatDuration(a.duration_s)}`);
  if (event.end_ts_ms) parts.push(`until ${formatTime(event.end_ts_ms)}`);
  // Anything else, briefly, so a new event kind is still legible before it gets its own words.
  if (parts.length === 0) {
    for (const [k, v] of Object.entries(a)) {
      if (v !== null && typeof v !== "object") parts.push(`${k.replaceAll("_", " ")} ${v}`);
    }
  }
  return parts.join(" · ");
}

export function renderEvents(list, events, inventory, { empty = "No events yet." } = {}) {
  if (!events?.length) {
    const li = document.createElement("li");
    li.className = "placeholder";
    li.textContent = empty;
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(
    ...events.map((event) => {
      const li = document.createElement("li");
      const severity = severityName(event.severity);
      li.className = `event sev-${severity}`;
      li.dataset.kind = event.kind;

      const time = document.createElement("time");
      time.dateTime = new Date(event.ts_ms).toISOString();
      time.textContent = formatTime(event.ts_ms);

      const kind = document.createElement("span");
      kind.className = "event-kind";
      kind.textContent = KIND_TEXT[event.kind] ?? event.kind;

      const server = serverOf(event.entity, inventory);
      const entity = document.createElement(server ? "a" : "span");
      entity.className = "event-entity";
      entity.textContent = event.entity;
      if (server) entity.href = `server.html?entity=${server}`;

      const badge = document.createElement("span");
      badge.className = "sev-badge";
      badge.textContent = severity;

      const detail = document.createElement("span");
      detail.className = "event-detail";
      detail.textContent = describe(event);

      li.append(time, badge, kind, entity, detail);
      return li;
    }),
  );
}

// An event feed that hides INFO events (commands applied, usage changes...) unless asked: the
// warnings and failures are what someone opening the page is looking for.
//   list: the <ol>; toggleHost: where the "Show info" checkbox goes; max: events shown at most
export class EventFeed {
  constructor(list, { toggleHost, empty = "No events yet.", max = 40 }) {
    Object.assign(this, { list, empty, max });
    this.events = null;
    this.inventory = [];
    const label = document.createElement("label");
    label.className = "feed-toggle";
    this.checkbox = document.createElement("input");
    this.checkbox.type = "checkbox";
    this.checkbox.id = `${list.id}-show-info`;
    this.checkbox.checked = false;
    this.checkbox.addEventListener("change", () => this.draw());
    this.label = document.createElement("span");
    label.append(this.checkbox, this.label);
    toggleHost.append(label);
    this.showLabel(0);
  }

  get showInfo() {
    return this.checkbox.checked;
  }

  render(events, inventory) {
    this.events = events ?? [];
    this.inventory = inventory;
    this.draw();
  }

  showLabel(hidden) {
    this.label.textContent = hidden ? `Show info (${hidden} hidden)` : "Show info";
  }

  draw() {
    if (this.events === null) return;
    const info = this.events.filter((e) => severityName(e.severity) === "info").length;
    const shown = (
      this.showInfo ? this.events : this.events.filter((e) => severityName(e.severity) !== "info")
    ).slice(0, this.max);
    this.showLabel(this.showInfo ? 0 : info);
    const empty = info && !this.showInfo ? `${this.empty} (${info} info hidden)` : this.empty;
    renderEvents(this.list, shown, this.inventory, { empty });
  }
}
