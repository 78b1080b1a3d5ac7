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
      // The worst of its own and its parts' states, and which part gave it (null: itself).
      rollup: s.rollup_state ? normaliseState(s.rollup_state) : null,
      rollupFrom: s.rollup_from ?? null,
      alerts: s.alerts ?? null, // {warning, critical}: active alerts on it and its parts
    };
  }
  return states;
}

const BAD = ["WARNING", "CRITICAL", "FAILED"];

// The state to show for an entity with parts (a server and its fans): GET /states's
// `rollup_state` (the worst of its own and its parts'), and `rollup_from`, the part that gave
// it. From a server that does not send them, the same from the parts' own states.
export function rollupOf(path, states) {
  const own = states[path];
  if (own?.rollup) return { state: own.rollup, from: own.rollupFrom };
  let state = own?.state ?? "UNKNOWN";
  let from = null;
  for (const [p, s] of Object.entries(states)) {
    if (!p.startsWith(`${path}/`) || BAD.indexOf(s.state) <= BAD.indexOf(state)) continue;
    state = s.state;
    from = p;
  }
  return { state, from };
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

// A group expands by itself while it is this small; a room-wide fault (15 alerts of one rule)
// shows as one line with its count until someone opens it.
const OPEN_UP_TO = 3;
const NAMED_ENTITIES = 3;

// Alerts by rule, in the shape of GET /alerts?group_by=rule's `groups`:
// {rule, level, count, entities, oldest_fired_ts_ms}, plus the alerts themselves.
export function groupAlerts(alerts) {
  const groups = new Map();
  for (const a of [...alerts].sort(order)) {
    const rule = a.rule || a.metric || "alert";
    if (!groups.has(rule)) {
      groups.set(rule, {
        rule,
        level: a.level,
        count: 0,
        entities: [],
        oldest_fired_ts_ms: null,
        alerts: [],
      });
    }
    const g = groups.get(rule);
    g.alerts.push(a);
    g.count += 1;
    if (LEVELS.indexOf(a.level) < LEVELS.indexOf(g.level)) g.level = a.level;
    if (a.firedMs !== null && (g.oldest_fired_ts_ms === null || a.firedMs < g.oldest_fired_ts_ms)) {
      g.oldest_fired_ts_ms = a.firedMs;
    }
  }
  // Entities as the server names them: oldest fired first, each once.
  for (const g of groups.values()) {
    const byAge = [...g.alerts].sort((x, y) => (x.firedMs ?? 0) - (y.firedMs ?? 0));
    g.entities = [...new Set(byAge.map((a) => a.entity))];
  }
  // Groups with something to acknowledge first, then the worst level, then the largest.
  const open = (g) => g.alerts.some((a) => a.state !== "acknowledged");
  return [...groups.values()].sort(
    (x, y) =>
      Number(open(y)) - Number(open(x)) ||
      LEVELS.indexOf(x.level) - LEVELS.indexOf(y.level) ||
      y.count - x.count ||
      x.rule.localeCompare(y.rule),
  );
}

// The active-alerts panel: alerts grouped by rule (count, level, the entities, the oldest),
// a checkbox on each alert and group, "select all" and "acknowledge selected" (one
// POST /alerts/ack for all of them).
//   list: the <ol>; count: an element for the number (optional)
//   within: an entity path; only alerts on it or below it are listed (null: all)
//   nowMs(): the data clock ("for 3 min" is data time: the twin may run faster than the wall)
//   serverOf(path): the server page an entity links to (null: no link)
//   onChange(): after the list changed (pages refresh states then)
export class AlertsPanel {
  constructor({ list, count = null, within = null, nowMs, serverOf, onChange = () => {} }) {
    Object.assign(this, { list, count, within, nowMs, serverOf, onChange });
    this.alerts = new Map(); // id -> alert
    this.serverGroups = null; // rule -> group of the last GET /alerts?group_by=rule
    this.selected = new Set(); // ids
    this.expanded = new Map(); // rule -> true/false, once the user opened or closed a group
    this.loaded = false;
    this.signature = "";
    this.early = null;
    // Bumped by every change made here (a stream alert, an acknowledgement): a GET /alerts sent
    // before it may not know it yet, so its answer is dropped and a fresh one is asked for.
    this.version = 0;
    this.buildTools();
  }

  buildTools() {
    const tools = el("div", "alerts-tools");
    tools.hidden = true;
    const label = el("label", "select-all");
    this.selectAll = el("input");
    this.selectAll.type = "checkbox";
    this.selectAll.id = `${this.list.id}-select-all`;
    this.selectAll.addEventListener("change", () => {
      this.selected = new Set(this.selectAll.checked ? this.open().map((a) => a.id) : []);
      this.syncSelection();
    });
    label.append(this.selectAll, el("span", "", "Select all"));
    this.ackSelected = el("button", "btn alerts-ack-selected", "Acknowledge selected");
    this.ackSelected.type = "button";
    this.ackSelected.id = `${this.list.id}-ack-selected`;
    this.ackSelected.addEventListener("click", () =>
      busy(this.ackSelected, () => this.acknowledgeSelected()),
    );
    tools.append(label, this.ackSelected);
    this.list.before(tools);
    this.tools = tools;
  }

  // Alerts that can still be acknowledged.
  open() {
    return [...this.alerts.values()].filter((a) => a.state !== "acknowledged");
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
      const params = { group_by: "rule" };
      if (this.within) params.entity = `${this.within}/**`;
      const { alerts, groups } = await getJSON("/alerts", params);
      if (version !== this.version) return;
      this.alerts = new Map(
        (alerts ?? [])
          .map(normaliseAlert)
          .filter((a) => a.state !== "resolved" && this.concerns(a.entity))
          .map((a) => [a.id, a]),
      );
      this.serverGroups = Array.isArray(groups) ? new Map(groups.map((g) => [g.rule, g])) : null;
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
    this.serverGroups = null; // what the server said no longer covers what is listed
    this.render();
    clearTimeout(this.early);
    this.early = setTimeout(() => this.refresh(), EARLY_REFRESH_MS);
  }

  // The groups to show: the server's counts, levels and ages (GET /alerts?group_by=rule) while
  // they describe what is listed, else the same grouping made here (between a stream alert and
  // the next read). The entities are always the listed ones: the server names only the first
  // ten of a group.
  groups() {
    const local = groupAlerts(this.alerts.values());
    if (!this.serverGroups) return local;
    return local.map((g) => {
      const server = this.serverGroups.get(g.rule);
      if (!server || server.count !== g.count) return g;
      const level = String(server.level ?? g.level).toLowerCase();
      return {
        ...g,
        level: LEVELS.includes(level) ? level : g.level,
        oldest_fired_ts_ms: server.oldest_fired_ts_ms ?? g.oldest_fired_ts_ms,
      };
    });
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
    // Forget selected alerts that went (resolved) or were acknowledged meanwhile.
    const open = new Set(this.open().map((a) => a.id));
    this.selected = new Set([...this.selected].filter((id) => open.has(id)));
    if (signature !== this.signature) {
      this.signature = signature;
      if (alerts.length === 0) {
        const empty = this.within ? "No active alert here." : "No active alert.";
        this.list.replaceChildren(el("li", "placeholder alerts-empty", empty));
      } else {
        this.list.replaceChildren(...this.groups().map((g) => this.group(g)));
      }
      this.tools.hidden = open.size === 0;
      this.onChange();
    }
    this.syncSelection();
    this.tick();
  }

  group(g) {
    const li = el("li", `alert-group lvl-${g.level}`);
    li.dataset.rule = g.rule;
    li.dataset.count = String(g.count);
    const isOpen = this.expanded.get(g.rule) ?? g.count <= OPEN_UP_TO;
    li.dataset.open = String(isOpen);
    if (g.count === 1) {
      // A group of one is just its alert: a header would only repeat it.
      li.classList.add("alert-group-single");
      const items = el("ol", "group-items");
      items.append(this.item(g.alerts[0]));
      li.append(items);
      return li;
    }

    const head = el("div", "group-head");
    const pick = el("input", "group-select");
    pick.type = "checkbox";
    pick.setAttribute("aria-label", `Select the ${g.count} ${g.rule} alerts`);
    pick.addEventListener("change", () => {
      for (const a of g.alerts) {
        if (a.state === "acknowledged") continue;
        if (pick.checked) this.selected.add(a.id);
        else this.selected.delete(a.id);
      }
      this.syncSelection();
    });
    const toggle = el("button", "group-toggle");
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", String(isOpen));
    toggle.append(el("span", "group-rule", g.rule), el("span", "group-count", String(g.count)));
    toggle.title = isOpen ? "Hide these alerts" : `Show the ${g.count} alerts`;
    const level = el("span", "alert-level", g.level);
    const age = el("time", "alert-age group-age");
    if (g.oldest_fired_ts_ms !== null) {
      age.dateTime = new Date(g.oldest_fired_ts_ms).toISOString();
      age.title = `Oldest fired at ${formatTime(g.oldest_fired_ts_ms)} (data time)`;
    }
    const acked = g.alerts.filter((a) => a.state === "acknowledged").length;
    const names = g.entities.slice(0, NAMED_ENTITIES).join(", ");
    const more = g.entities.length - NAMED_ENTITIES;
    const summary = el(
      "p",
      "group-summary",
      `${g.entities.length} ${g.entities.length === 1 ? "entity" : "entities"}: ${names}` +
        `${more > 0 ? ` and ${more} more` : ""}` +
        `${acked ? ` · ${acked} acknowledged` : ""}`,
    );
    head.append(pick, toggle, level, age, summary);

    const items = el("ol", "group-items");
    items.hidden = !isOpen;
    items.append(...g.alerts.map((a) => this.item(a)));
    toggle.addEventListener("click", () => {
      const now = items.hidden;
      items.hidden = !now;
      li.dataset.open = String(now);
      toggle.setAttribute("aria-expanded", String(now));
      this.expanded.set(g.rule, now);
    });
    li.append(head, items);
    return li;
  }

  item(alert) {
    const li = el("li", `alert lvl-${alert.level}`);
    li.dataset.alertId = alert.id;
    li.dataset.state = alert.state;
    li.dataset.entity = alert.entity;

    const head = el("div", "alert-head");
    if (alert.state !== "acknowledged") {
      const pick = el("input", "alert-select");
      pick.type = "checkbox";
      pick.setAttribute("aria-label", `Select the alert on ${alert.entity}`);
      pick.addEventListener("change", () => {
        if (pick.checked) this.selected.add(alert.id);
        else this.selected.delete(alert.id);
        this.syncSelection();
      });
      head.append(pick);
    }
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

  // Checkboxes follow `selected`; a group's box is mixed while only some of it is selected.
  syncSelection() {
    for (const box of this.list.querySelectorAll(".alert-select")) {
      box.checked = this.selected.has(box.closest(".alert").dataset.alertId);
    }
    for (const group of this.list.querySelectorAll(".alert-group")) {
      const boxes = [...group.querySelectorAll(".alert-select")];
      const on = boxes.filter((b) => b.checked).length;
      const box = group.querySelector(".group-select");
      if (!box) continue; // a group of one has no box of its own
      box.checked = boxes.length > 0 && on === boxes.length;
      box.indeterminate = on > 0 && on < boxes.length;
      box.disabled = boxes.length === 0;
    }
    const openCount = this.open().length;
    const n = this.selected.size;
    this.selectAll.checked = n > 0 && n === openCount;
    this.selectAll.indeterminate = n > 0 && n < openCount;
    this.ackSelected.disabled = n === 0;
    this.ackSelected.textContent = n ? `Acknowledge selected (${n})` : "Acknowledge selected";
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

  // One POST /alerts/ack for every selected alert; those no longer open (resolved meanwhile)
  // come back in `not_found` and leave the list.
  async acknowledgeSelected() {
    const ids = [...this.selected];
    if (!ids.length) return;
    const answer = await act("POST", "/alerts/ack", { ids }, (a) => {
      const done = a?.acknowledged?.length ?? 0;
      const gone = a?.not_found?.length ?? 0;
      const text = `${done} alert${done === 1 ? "" : "s"} acknowledged.`;
      return gone ? `${text} ${gone} had resolved meanwhile.` : text;
    });
    if (!answer) return;
    for (const item of answer.acknowledged ?? []) {
      const id = typeof item === "string" ? item : item?.id;
      const known = this.alerts.get(id);
      if (!known) continue;
      const updated = typeof item === "object" ? normaliseAlert(item) : {};
      this.alerts.set(id, { ...known, ...updated, id, state: "acknowledged" });
    }
    for (const id of answer.not_found ?? []) this.alerts.delete(id);
    this.selected.clear();
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
