// Alerts and device states (docs/ALERTS.md): the active-alerts panel used by both pages, and
// the state chips (OK, WARNING, CRITICAL, FAILED, MAINTENANCE, UNKNOWN; busy/idle for servers).
//
// The panel is filled from GET /alerts, refreshed now and then; the WebSocket's `alerts` array
// shows a new alert at once, and each such message also triggers an early refresh, because
// REST is the record (acknowledgements, ids, the full list).

import { getJSON } from "./api.js";
import { act, busy } from "./control.js";
import { formatDuration, formatTime, formatValue } from "./format.js";

export const STATES = ["OK", "WARNING", "CRITICAL", "FAILED", "MAINTENANCE", "UNKNOWN"];

const STATE_TEXT = {
  OK: "OK",
  WARNING: "Warning",
  CRITICAL: "Critical",
  FAILED: "Failed",
  MAINTENANCE: "Maintenance",
  UNKNOWN: "Unknown",
};

const LEVELS = ["critical", "warning", "info"];
const ALERTS_REFRESH_MS = 5_000;
// A burst of stream alerts (a fan fails: an alert, its server's state...) gives one refresh.
const EARLY_REFRESH_MS = 300;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// States arrive as "FAILED" (API) or "failed" (the engine's names): one spelling here.
export function normaliseState(state) {
  const name = String(state ?? "UNKNOWN").toUpperCase();
  return STATES.includes(name) ? name : "UNKNOWN";
}

// GET /states as {path: {state, sinceMs, reason, usage}}; tolerant of the engine's field names.
export async function loadStates(entity) {
  const answer = await getJSON("/states", entity ? { entity } : {});
  const states = {};
  for (const [path, s] of Object.entries(answer.entities ?? {})) {
    states[path] = {
      state: normaliseState(s.state),
      sinceMs: s.since_ms ?? s.since_ts_ms ?? null,
      reason: s.reason ?? "",
      usage: s.usage ? String(s.usage).toLowerCase() : null,
    };
  }
  return states;
}

// A chip that says the state in a word (colour is a second cue, never the only one).
export function stateChip(state, usage, className = "") {
  const name = normaliseState(state);
  const chip = el("span", `state-chip ${className}`.trim());
  chip.dataset.state = name;
  chip.append(el("span", "state-dot"), el("span", "state-name", STATE_TEXT[name]));
  if (usage) chip.append(el("span", "state-usage", usage));
  chip.title = `State: ${name}${usage ? `, ${usage}` : ""}`;
  return chip;
}

// One alert from REST (`state`, `fired_at_ms`) or the engine/stream (`status`, `fired_ts_ms`,
// `ts_ms`, `timestamp`), in one shape.
export function normaliseAlert(a) {
  const firedMs = a.fired_at_ms ?? a.fired_ts_ms ?? a.ts_ms ?? Date.parse(a.timestamp);
  const level = String(a.level).toLowerCase();
  return {
    id: a.id ?? `${a.rule ?? a.metric}|${a.entity}`,
    rule: a.rule ?? "",
    entity: a.entity ?? "",
    metric: a.metric ?? "",
    level: LEVELS.includes(level) ? level : "warning",
    state: String(a.state ?? a.status ?? "firing").toLowerCase(),
    value: a.value,
    threshold: a.threshold,
    unit: a.unit ?? "",
    message: a.message ?? "",
    firedMs: Number.isFinite(firedMs) ? firedMs : null,
    ackBy: a.acknowledged_by ?? null,
  };
}

// Unacknowledged first, then critical before warning, then newest first.
function order(a, b) {
  const rank = (x) => (x.state === "acknowledged" ? 3 : 0) + LEVELS.indexOf(x.level);
  return rank(a) - rank(b) || (b.firedMs ?? 0) - (a.firedMs ?? 0);
}

// The active-alerts panel.
//   list: the <ol>; count: an element for the number (optional)
//   within: an entity path; only alerts on it or below it are listed (null: all)
//   nowMs(): the data clock ("for 3 min" is data time: the twin may run faster than the wall)
//   serverOf(path): the server page an entity links to (null: no link)
//   onChange(): after the list changed (pages refresh states then)
export class AlertsPanel {
  constructor({ list, count = null, within = null, nowMs, serverOf, onChange = () => {} }) {
    Object.assign(this, { list, count, within, nowMs, serverOf, onChange });
    this.alerts = new Map(); // id -> alert
    this.loaded = false;
    this.signature = "";
    this.early = null;
    // Bumped by every change made here (a stream alert, an acknowledgement): a GET /alerts sent
    // before it may not know it yet, so its answer is dropped and a fresh one is asked for.
    this.version = 0;
  }

  start() {
    this.refresh();
    setInterval(() => this.refresh(), ALERTS_REFRESH_MS);
    return this;
  }

  concerns(entity) {
    return !this.within || entity === this.within || entity.startsWith(`${this.within}/`);
  }

  async refresh() {
    const version = this.version;
    try {
      const { alerts } = await getJSON("/alerts");
      if (version !== this.version) return;
      this.alerts = new Map(
        (alerts ?? [])
          .map(normaliseAlert)
          .filter((a) => a.state !== "resolved" && this.concerns(a.entity))
          .map((a) => [a.id, a]),
      );
      this.loaded = true;
      this.render();
    } catch (error) {
      if (!this.loaded) {
        this.list.replaceChildren(
          el("li", "placeholder error", `Could not load alerts: ${error.message}`),
        );
      }
      console.warn("alerts:", error.message);
    }
  }

  // Occurrences from the stream: fired and escalated ones are shown at once, resolved ones go.
  ingest(occurrences) {
    let changed = false;
    for (const raw of occurrences) {
      const a = normaliseAlert(raw);
      if (!this.concerns(a.entity)) continue;
      const known =
        this.alerts.get(a.id) ??
        [...this.alerts.values()].find((x) => x.entity === a.entity && x.metric === a.metric);
      if (a.state === "resolved") {
        if (known) this.alerts.delete(known.id);
      } else {
        // Keep what REST knows (the id, an acknowledgement); take the stream's newer reading.
        const merged = known
          ? { ...known, level: a.level, value: a.value, message: a.message || known.message }
          : a;
        if (known && known.id !== merged.id) this.alerts.delete(known.id);
        this.alerts.set(merged.id, merged);
      }
      changed = true;
    }
    if (!changed) return;
    this.loaded = true;
    this.changed();
  }

  // After a change made here: show it, and read the record again shortly.
  changed() {
    this.version += 1;
    this.render();
    clearTimeout(this.early);
    this.early = setTimeout(() => this.refresh(), EARLY_REFRESH_MS);
  }

  // Rebuilds the list only when the alerts themselves changed, so a button under the pointer
  // is not replaced between two refreshes; ages are updated in place by tick().
  render() {
    const alerts = [...this.alerts.values()].sort(order);
    const signature = JSON.stringify(alerts.map((a) => [a.id, a.level, a.state, a.message]));
    if (this.count) {
      const firing = alerts.filter((a) => a.state !== "acknowledged").length;
      this.count.textContent = String(alerts.length);
      this.count.dataset.level = alerts.some(
        (a) => a.level === "critical" && a.state !== "acknowledged",
      )
        ? "critical"
        : firing
          ? "warning"
          : "none";
      this.count.hidden = alerts.length === 0;
      this.count.title = `${alerts.length} active, ${firing} not acknowledged`;
    }
    if (signature !== this.signature) {
      this.signature = signature;
      if (alerts.length === 0) {
        const empty = this.within ? "No active alert here." : "No active alert.";
        this.list.replaceChildren(el("li", "placeholder alerts-empty", empty));
      } else {
        this.list.replaceChildren(...alerts.map((a) => this.item(a)));
      }
      this.onChange();
    }
    this.tick();
  }

  item(alert) {
    const li = el("li", `alert lvl-${alert.level}`);
    li.dataset.alertId = alert.id;
    li.dataset.state = alert.state;
    li.dataset.entity = alert.entity;

    const head = el("div", "alert-head");
    head.append(el("span", "alert-level", alert.level));
    const state = el("span", "alert-state");
    state.textContent =
      alert.state === "acknowledged"
        ? `acknowledged${alert.ackBy ? ` by ${alert.ackBy}` : ""}`
        : "firing";
    const age = el("time", "alert-age");
    if (alert.firedMs !== null) {
      age.dateTime = new Date(alert.firedMs).toISOString();
      age.title = `Fired at ${formatTime(alert.firedMs)} (data time)`;
    }
    head.append(state, age);

    const server = this.serverOf(alert.entity);
    const entity = el(server ? "a" : "span", "alert-entity", alert.entity);
    if (server) entity.href = `server.html?entity=${server}`;

    const message = el("p", "alert-message", alert.message || this.describe(alert));
    li.append(head, entity, message);

    if (alert.state !== "acknowledged") {
      const ack = el("button", "btn alert-ack", "Acknowledge");
      ack.type = "button";
      ack.setAttribute("aria-label", `Acknowledge the alert on ${alert.entity}`);
      ack.addEventListener("click", () => busy(ack, () => this.acknowledge(alert)));
      li.append(ack);
    }
    return li;
  }

  describe(alert) {
    const value = formatValue(alert.metric, alert.value);
    const threshold = formatValue(alert.metric, alert.threshold);
    return `${alert.rule || alert.metric}: ${value} (threshold ${threshold})`;
  }

  async acknowledge(alert) {
    const answer = await act(
      "POST",
      `/alerts/${encodeURIComponent(alert.id)}/ack`,
      undefined,
      `Alert on ${alert.entity} acknowledged.`,
    );
    if (!answer) return;
    const updated = answer.alert ? normaliseAlert(answer.alert) : { ...alert };
    if (updated.state === "firing") updated.state = "acknowledged"; // an older server's answer
    this.alerts.set(alert.id, { ...alert, ...updated, id: alert.id });
    this.changed();
  }

  // "for 3 min 10 s" on the data clock.
  tick() {
    const now = this.nowMs();
    for (const age of this.list.querySelectorAll(".alert-age")) {
      const fired = Date.parse(age.dateTime);
      const seconds = Math.max(0, (now - fired) / 1000);
      age.textContent = Number.isFinite(fired) ? `for ${formatDuration(seconds)}` : "";
    }
  }
}
