// What the intelligence consumer says, on the pages: health 0-100 and seed 002's criticity
// (GET /health/now), diagnosed incidents (GET /incidents), fan failure predictions
// (GET /predictions) and its live KPIs (GET /status, key `intelligence`). Every text from the
// server (entity names, causes, actions, evidence) goes into the page as textContent, never as
// markup.

import { entityPath, getJSON } from "./api.js";
import { formatDuration, formatTime, isMissing } from "./format.js";
import { el } from "./ui.js";

const DASH = "\u2014";
export const CRITICITIES = ["low", "medium", "high", "critical"];

// ---- health ---------------------------------------------------------------------------------

// Every entity's health now ({path: health}), or null when the server runs without the
// intelligence (503) or cannot answer: the pages then show no chip rather than a stale one.
export async function loadHealth(entity = "**") {
  try {
    return (await getJSON("/health/now", { entity })).entities ?? {};
  } catch (error) {
    console.warn("health:", error.message);
    return null;
  }
}

// The lines of a health chip's tooltip: score, class, the hour ahead, reasons, next failure.
export function healthTitle(path, health) {
  const lines = [
    `${path}: health ${health.score.toFixed(1)} / 100 (${health.criticity}); ` +
      `in an hour ${health.predicted_score.toFixed(1)} (${health.predicted_criticity})`,
    ...(health.reasons ?? []).map((r) => `\u2212 ${r.penalty.toFixed(0)}: ${r.detail} (${r.entity})`),
  ];
  const next = health.next_failure;
  if (next) {
    lines.push(`Next failure: ${next.entity}, ${next.what}, in ${formatDuration(next.eta_s)}`);
  }
  return lines.join("\n");
}

// A health chip (the class is written, not only coloured). `mini`: score and class only, for a
// server tile; else with a "health" label. A missing health gives a hidden chip.
export function healthChip(path, health, { mini = false, label = "health" } = {}) {
  const chip = el("span", mini ? "health-chip health-mini" : "health-chip");
  chip.dataset.healthOf = path;
  fillHealthChip(chip, path, health, { mini, label });
  return chip;
}

export function fillHealthChip(chip, path, health, { mini = false, label = "health" } = {}) {
  chip.hidden = !health;
  if (!health) {
    chip.replaceChildren();
    delete chip.dataset.criticity;
    chip.removeAttribute("title");
    return;
  }
  const criticity = CRITICITIES.includes(health.criticity) ? health.criticity : "critical";
  chip.dataset.criticity = criticity;
  chip.replaceChildren(
    ...(mini ? [] : [el("span", "health-label", label)]),
    el("span", "health-value", health.score.toFixed(0)),
    el("span", "health-class", criticity),
  );
  chip.title = healthTitle(path, health);
}

// ---- incidents ------------------------------------------------------------------------------

const CAUSE_TEXT = {
  fan_failure: "Fan failure",
  fan_wear: "Fan wear",
  cooling: "Cooling",
  airflow: "Airflow",
  load: "Load",
  power_cap: "Power cap",
  disk: "Disk",
  sensor_stuck: "Sensor stuck",
  sensor_null: "Sensor silent",
  sensor_drift: "Sensor drift",
  sensor_disagreement: "Sensors disagree",
  unknown: "Unknown cause",
};
const NATURE_TEXT = { sensor: "sensor fault", real: "real problem" };
// A room-wide incident may name every server: the first few are links, then a count.
const MAX_DEVICES_SHOWN = 12;

export function causeText(cause) {
  return CAUSE_TEXT[cause] ?? String(cause ?? "unknown").replaceAll("_", " ");
}

// The page of a device: a host's or a server's (the server above a fan); null for the rest.
export function pageOf(path, inventory = []) {
  if (path.startsWith("host/")) {
    const host = path.split("/").slice(0, 2).join("/");
    return `host.html?entity=${entityPath(host)}`;
  }
  const servers = new Set(inventory.filter((e) => e.kind === "server").map((e) => e.path));
  for (let p = path; p; p = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : null) {
    if (servers.has(p)) return `server.html?entity=${entityPath(p)}`;
  }
  return null;
}

function entityLink(path, inventory, className) {
  const href = pageOf(path, inventory);
  const node = el(href ? "a" : "span", className, path);
  if (href) node.href = href;
  return node;
}

function incidentItem(incident, inventory) {
  const li = el("li", "incident");
  li.dataset.id = incident.id;
  li.dataset.open = String(incident.is_open);
  li.dataset.nature = incident.nature;
  li.dataset.scope = incident.scope;
  if (!incident.is_open) li.classList.add("incident-closed");

  const head = el("div", "incident-head");
  const nature = el("span", "incident-nature", NATURE_TEXT[incident.nature] ?? incident.nature);
  nature.dataset.nature = incident.nature;
  const when = incident.is_open
    ? `since ${formatTime(incident.start ?? incident.opened_ts)}`
    : `closed ${formatTime(incident.closed_ts ?? incident.end)}`;
  head.append(
    el("span", "incident-cause", causeText(incident.cause)),
    nature,
    el("span", "incident-scope", incident.scope),
    el("time", "incident-when", when),
  );

  const where = el("div", "incident-entity");
  where.append(entityLink(incident.entity, inventory, "incident-scope-entity"));
  const n = incident.n_anomalies ?? 0;
  where.append(el("span", "incident-count", ` · ${n} ${n === 1 ? "anomaly" : "anomalies"}`));

  const devices = el("div", "incident-devices");
  const listed = incident.devices ?? [];
  if (listed.length) {
    devices.append(el("span", "incident-label", listed.length === 1 ? "Device" : "Devices"));
    for (const device of listed.slice(0, MAX_DEVICES_SHOWN)) {
      devices.append(entityLink(device, inventory, "incident-device"));
    }
    if (listed.length > MAX_DEVICES_SHOWN) {
      devices.append(el("span", "incident-more", `+${listed.length - MAX_DEVICES_SHOWN} more`));
    }
  }

  const parts = [head, where];
  if (listed.length) parts.push(devices);
  if (incident.action) {
    const action = el("p", "incident-action");
    action.append(el("span", "incident-label", "Action"), el("span", "", incident.action));
    parts.push(action);
  }
  if (incident.evidence?.length) {
    const evidence = el("ul", "incident-evidence");
    evidence.setAttribute("aria-label", "Evidence");
    evidence.append(...incident.evidence.map((line) => el("li", "", line)));
    parts.push(evidence);
  }
  li.append(...parts);
  li.title =
    `${incident.id}: ${incident.scope} incident on ${incident.entity}, ` +
    `${NATURE_TEXT[incident.nature] ?? incident.nature}, ${causeText(incident.cause)}`;
  return li;
}

// Incidents as the API orders them (open ones first); closed ones are dimmed.
export function renderIncidents(list, incidents, inventory, { empty = "No incident." } = {}) {
  if (!incidents.length) {
    list.replaceChildren(el("li", "placeholder incidents-empty", empty));
    return;
  }
  list.replaceChildren(...incidents.map((i) => incidentItem(i, inventory)));
}

// A panel that reads GET /incidents now and then: `params` narrow it (entity, open, from).
export class IncidentsPanel {
  constructor({ list, count, params = {}, inventory = () => [], empty = "No incident." }) {
    Object.assign(this, { list, count, params, inventory, empty });
  }

  async refresh() {
    let body;
    try {
      body = await getJSON("/incidents", { limit: 50, ...this.params });
    } catch (error) {
      console.warn("incidents:", error.message);
      if (this.list.querySelector(".incident") === null) {
        this.list.replaceChildren(
          el("li", "placeholder error", `Could not load the incidents: ${error.message}`),
        );
      }
      return;
    }
    renderIncidents(this.list, body.incidents ?? [], this.inventory(), { empty: this.empty });
    if (this.count) {
      const open = body.n_open ?? 0;
      this.count.hidden = open === 0;
      this.count.textContent = String(open);
      this.count.dataset.level = open ? "warning" : "";
      this.count.title = `${open} open incident${open === 1 ? "" : "s"}`;
    }
  }
}

// ---- predictions ----------------------------------------------------------------------------

const STATUS_TEXT = { active: "failure predicted", failed: "has failed", cleared: "withdrawn" };

export function timeToFailure(p) {
  if (p.status === "cleared") return "prediction withdrawn";
  if (p.eta_s === 0) return "has failed";
  if (isMissing(p.eta_s)) return DASH;
  const low = isMissing(p.low_s) ? "?" : formatDuration(p.low_s);
  const high = isMissing(p.high_s) ? "later" : formatDuration(p.high_s);
  return `fails in ${formatDuration(p.eta_s)} (${low} to ${high})`;
}

function predictionItem(p, inventory) {
  const li = el("li", "prediction");
  li.dataset.status = p.status;
  li.dataset.device = p.entity;
  const head = el("div", "prediction-head");
  const status = el("span", "prediction-status", STATUS_TEXT[p.status] ?? p.status);
  status.dataset.status = p.status;
  head.append(entityLink(p.entity, inventory, "prediction-entity"), status);
  const eta = el("div", "prediction-eta", timeToFailure(p));
  const facts = [`${p.what ?? "fan wear"}`, `as of ${formatTime(p.made_ms)}`];
  if (!isMissing(p.ratio_now)) facts.push(`speed ${(p.ratio_now * 100).toFixed(1)} % of healthy`);
  const sub = el("div", "prediction-sub", facts.join(" · "));
  li.append(head, eta, sub);
  return li;
}

export function renderPredictions(list, predictions, inventory) {
  if (!predictions.length) {
    list.replaceChildren(el("li", "placeholder predictions-empty", "No failure predicted."));
    return;
  }
  list.replaceChildren(...predictions.map((p) => predictionItem(p, inventory)));
}

// ---- KPIs -----------------------------------------------------------------------------------

function number(value, digits = 1) {
  return isMissing(value) || typeof value !== "number" ? DASH : value.toFixed(digits);
}

function seconds(value) {
  return isMissing(value) || typeof value !== "number" ? DASH : formatDuration(value);
}

// `trained_at` is an epoch instant: seconds or milliseconds (a number below 10^11 is seconds).
function instant(value) {
  if (isMissing(value) || typeof value !== "number") return DASH;
  return formatTime(value < 1e11 ? value * 1000 : value);
}

// The KPI boxes from /status's `intelligence` (absent: a server without it, or an older one):
// every missing or null figure is a dash, never an error.
export function renderKpis(status) {
  const k = status?.intelligence ?? {};
  const latency = k.detection_latency_s ?? {};
  const model = k.model ?? {};
  const set = (id, text, title) => {
    const node = document.getElementById(id);
    if (!node) return;
    node.textContent = text;
    if (title !== undefined) node.title = title;
  };
  set("kpi-anomalies-per-day", number(k.anomalies_per_day));
  set(
    "kpi-incidents-open",
    Number.isInteger(k.incidents_open) ? String(k.incidents_open) : DASH,
  );
  set("kpi-latency-median", seconds(latency.median));
  set("kpi-latency-p95", seconds(latency.p95));
  set(
    "kpi-latency-faults",
    Number.isInteger(latency.n_faults) ? `${latency.n_faults} faults` : `${DASH} faults`,
  );
  set("kpi-model-version", typeof model.version === "string" ? model.version : DASH);
  set("kpi-model-trained", `trained ${instant(model.trained_at)}`);
}

export async function loadKpis() {
  try {
    renderKpis(await getJSON("/status"));
  } catch (error) {
    console.warn("status:", error.message);
    renderKpis(null);
  }
}
