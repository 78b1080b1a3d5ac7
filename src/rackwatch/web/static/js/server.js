// One server: live readings, its state (rolled up over its fans) and alerts, its fans (with
// their controls), charts over the page's time range (timerange.js: 15 min to 7 days or custom,
// raw or from the rollup tiers; drag to zoom; faults and alerts marked), candlesticks of any of
// its series, and the twin's fault injection.
//
// Control actions (fan mode and level, maintenance, faults, acknowledge) need a control token:
// see control.js; switching a fan off, injecting a fault and maintenance ask first. Their effect
// is shown from what the server reports afterwards (GET /fans, GET /states, telemetry), never
// assumed from the click.

import { entityPath, getJSON, newestTs, startStream } from "./api.js";
import { AlertsPanel, loadStates, normaliseState, rollupOf, stateChip } from "./alerts.js";
import { CandleChart, bucketStarts } from "./charts.js";
import { act, busy, mountTokenBox } from "./control.js";
import { PageCharts } from "./pagecharts.js";
import {
  FAN_LEVELS,
  formatDuration,
  formatPercent,
  formatTime,
  formatValue,
  formatWatts,
  metricLabel,
  tempColor,
} from "./format.js";
import { EventFeed, el, serverOf, setClock } from "./ui.js";
import { IncidentsPanel } from "./intelligence.js";

const EVENTS_REFRESH_MS = 10_000;
// Fan modes and device states change on operators' and the engine's decisions: poll them.
const FANS_REFRESH_MS = 3_000;
const STATES_REFRESH_MS = 4_000;
// The server computes health at most every 5 s; every 10 s is plenty for a score.
const HEALTH_REFRESH_MS = 10_000;
// Its open incidents (GET /incidents, from the store's incident events).
const INCIDENTS_REFRESH_MS = 10_000;
const KPI_METRICS = [
  "cpu_temperature_celsius",
  "inlet_temperature_celsius",
  "chassis_temperature_celsius",
  "power_watts",
  "airflow_cfm",
  "cpu_utilization_ratio",
  "disk_ok",
];
const FAN_METRICS = ["fan_level", "fan_rpm", "fan_power_watts"];
// Candles: each resolution's bucket and how often the stored rollups are re-read; "auto" takes
// 1-minute candles up to 12 hours (720 candles), 1-hour ones beyond.
const CANDLES = {
  "1m": { bucketMs: 60_000, refreshMs: 10_000, name: "1-minute" },
  "1h": { bucketMs: 3_600_000, refreshMs: 60_000, name: "1-hour" },
};
const AUTO_CANDLES_UP_TO_MS = 12 * 3_600_000;

const entity = new URLSearchParams(location.search).get("entity");
const latest = {}; // "entity|metric" -> newest value
let newest = 0;
let inventory = [];
let fans = [];
let charts = null; // the charts over the page's range (PageCharts)
let candle = null;
let candleToken = 0;
let candleTimer = null;
let fanStatus = {}; // fan path -> {mode, level, failed, failsafe} from GET /fans
let states = {}; // path -> {state, sinceMs, reason, usage, rollup...} from GET /states
let alertsPanel = null;
let feed = null;

const key = (e, m) => `${e}|${m}`;
const fanName = (path) => `Fan ${path.split("/").pop().replace(/^fan/, "")}`;

function fail(message) {
  const page = document.getElementById("page");
  const panel = el("section", "panel");
  const p = el("p", "placeholder error", message);
  const back = el("a", "", "Back to the room overview");
  back.href = "./";
  panel.append(p, back);
  page.replaceChildren(panel);
}

function buildHeader(server) {
  document.title = `rackwatch · ${entity}`;
  document.getElementById("server-name").textContent = entity;
  const crumbs = document.getElementById("crumbs");
  const parts = entity.split("/");
  parts.forEach((part, i) => {
    crumbs.append(el("span", "crumb-sep", "›"));
    const last = i === parts.length - 1;
    const node = el("span", last ? "" : "crumb", part);
    if (last) node.setAttribute("aria-current", "page");
    crumbs.append(node);
  });
  const a = server.attributes ?? {};
  const facts = [];
  if (a.rack) facts.push(`rack ${a.rack}`);
  if (a.slot !== undefined) facts.push(`slot ${a.slot}`);
  if (a.idle_watts !== undefined && a.peak_watts !== undefined) {
    facts.push(`draws ${formatWatts(a.idle_watts)} idle to ${formatWatts(a.peak_watts)} at peak`);
  }
  if (a.nominal_airflow_cfm !== undefined) {
    facts.push(`nominal airflow ${formatValue("airflow_cfm", a.nominal_airflow_cfm)}`);
  }
  document.getElementById("server-facts").textContent = facts.join(" · ");

  const kpis = document.getElementById("kpis");
  kpis.replaceChildren(
    ...KPI_METRICS.map((metric) => {
      const box = el("div", "kpi");
      box.dataset.metric = metric;
      box.append(el("dt", "", metricLabel(metric)), el("dd", "kpi-value", "—"));
      return box;
    }),
  );
}

// A fan card: state, level (buttons: the lit one is the level the fan reports; pressing one
// sets it by hand, which puts the fan in manual mode), mode (auto or manual), readings.
function buildFans() {
  const section = document.getElementById("fans");
  section.replaceChildren(
    ...fans.map((fan) => {
      const name = fanName(fan.path);
      const card = el("article", "panel fan-card");
      card.dataset.entity = fan.path;
      const head = el("header", "fan-head");
      const chips = el("div", "fan-chips");
      chips.append(el("span", "fan-mode", "—"), el("span", "fan-device"));
      head.append(el("h2", "", name), chips);
      const status = el("p", "fan-status");
      status.append(el("span", "fan-state", "—"), el("span", "fan-note"));

      const levels = el("div", "fan-levels");
      levels.setAttribute("role", "group");
      levels.setAttribute("aria-label", `${name} level`);
      FAN_LEVELS.forEach((levelName, level) => {
        const button = el("button", "fan-level", levelName);
        button.type = "button";
        button.dataset.level = String(level);
        button.title = `Set ${name} to ${levelName} (manual mode)`;
        button.setAttribute("aria-pressed", "false");
        button.addEventListener("click", () =>
          busy(button, () => setFanLevel(fan.path, levelName)),
        );
        levels.append(button);
      });

      const modes = el("div", "fan-modes");
      modes.setAttribute("role", "group");
      modes.setAttribute("aria-label", `${name} control mode`);
      for (const [mode, text, title] of [
        ["auto", "Auto", "The controller picks the level from the CPU temperature"],
        ["manual", "Manual", "The fan keeps the level set by hand"],
      ]) {
        const button = el("button", "fan-mode-btn", text);
        button.type = "button";
        button.dataset.mode = mode;
        button.title = title;
        button.setAttribute("aria-pressed", "false");
        button.addEventListener("click", () => busy(button, () => setFanMode(fan.path, mode)));
        modes.append(button);
      }

      const controls = el("div", "fan-controls");
      for (const [label, group] of [
        ["Level", levels],
        ["Control", modes],
      ]) {
        const row = el("div", "fan-control-row");
        row.append(el("span", "fan-control-label", label), group);
        controls.append(row);
      }

      const facts = el("dl", "fan-facts");
      for (const [label, cls] of [
        ["Speed", "fan-rpm"],
        ["Of max speed", "fan-pct"],
        ["Power", "fan-power"],
      ]) {
        const row = el("div");
        row.append(el("dt", "", label), el("dd", cls, "—"));
        facts.append(row);
      }
      card.append(head, status, controls, facts);
      return card;
    }),
  );
}

async function setFanLevel(fan, level) {
  // Off is the one level that can cook a server: say so and ask first.
  const ask =
    level === "off"
      ? {
          title: `Switch ${fanName(fan)} off?`,
          lines: [
            `${fan} stops and stays off in manual mode: the fan controller no longer runs it, ` +
              "even if the server heats up.",
            "Its CPU temperature rises; the other fan may not cool the server on its own. " +
              "Set the fan back to Auto to hand it to the controller again.",
          ],
          confirm: "Switch off",
        }
      : null;
  const answer = await act(
    "POST",
    "/fans/level",
    { entity: fan, level },
    `${fanName(fan)} set to ${level}, manual mode.`,
    { ask },
  );
  if (answer) await refreshFans();
}

async function setFanMode(fan, mode) {
  const done =
    mode === "auto"
      ? `${fanName(fan)} handed back to the controller (auto).`
      : `${fanName(fan)} in manual mode: it keeps its level.`;
  const answer = await act("POST", "/fans/mode", { entity: fan, mode }, done);
  if (answer) await refreshFans();
}

async function refreshFans() {
  try {
    const answer = await getJSON("/fans", { entity: `${entity}/**` });
    fanStatus = {};
    for (const f of answer.fans ?? []) {
      fanStatus[f.entity ?? f.fan] = {
        mode: f.mode ?? null,
        level: f.level ?? null,
        failed: Boolean(f.failed ?? f.is_failed),
        failsafe: Boolean(f.failsafe ?? f.is_failsafe),
      };
    }
    queueDraw();
  } catch (error) {
    console.warn("fans:", error.message);
  }
}

async function refreshStates() {
  try {
    states = await loadStates(`${entity}/**`);
    queueDraw();
  } catch (error) {
    console.warn("states:", error.message);
  }
}

function drawReadings() {
  for (const box of document.querySelectorAll("#kpis .kpi")) {
    const metric = box.dataset.metric;
    const value = latest[key(entity, metric)];
    box.querySelector(".kpi-value").textContent = formatValue(metric, value);
    box.classList.toggle("kpi-bad", metric === "disk_ok" && value !== undefined && value < 0.5);
  }
  const temp = latest[key(entity, "cpu_temperature_celsius")];
  const pill = document.getElementById("hero-temp");
  pill.textContent = `CPU ${formatValue("cpu_temperature_celsius", temp)}`;
  pill.style.setProperty("--tile-bg", tempColor(temp) ?? "var(--tile-unknown)");

  const badges = [];
  const disk = latest[key(entity, "disk_ok")];
  if (disk !== undefined && disk !== null && disk < 0.5) badges.push(["crit", "disk failed"]);
  drawState();
  for (const fan of fans) {
    const card = document.querySelector(`.fan-card[data-entity="${fan.path}"]`);
    const level = latest[key(fan.path, "fan_level")];
    const rpm = latest[key(fan.path, "fan_rpm")];
    const maxRpm = fan.attributes?.max_rpm;
    card.querySelectorAll(".fan-level").forEach((seg) => {
      const on = level !== undefined && level !== null && Number(seg.dataset.level) === level;
      seg.classList.toggle("active", on);
      seg.setAttribute("aria-pressed", String(on));
    });
    const control = fanStatus[fan.path];
    const mode = control?.mode ?? null;
    card.dataset.mode = mode ?? "";
    card.querySelector(".fan-mode").textContent = mode ? `${mode} mode` : "mode —";
    card.querySelector(".fan-mode").dataset.mode = mode ?? "";
    card.querySelectorAll(".fan-mode-btn").forEach((button) => {
      const on = button.dataset.mode === mode;
      button.classList.toggle("active", on);
      button.setAttribute("aria-pressed", String(on));
    });
    const device = states[fan.path]?.state ?? (control?.failed ? "FAILED" : null);
    const failed = device === "FAILED" || Boolean(control?.failed);
    card.dataset.state = failed ? "FAILED" : (device ?? "UNKNOWN");
    card
      .querySelector(".fan-device")
      .replaceChildren(stateChip(failed ? "FAILED" : (device ?? "UNKNOWN")));
    card.querySelector(".fan-note").textContent = control?.failsafe
      ? " · fail-safe: the controller runs this server's fans high"
      : "";
    card.querySelector(".fan-rpm").textContent = formatValue("fan_rpm", rpm);
    card.querySelector(".fan-pct").textContent =
      rpm !== undefined && rpm !== null && maxRpm ? formatPercent(rpm / maxRpm) : "—";
    card.querySelector(".fan-power").textContent = formatValue(
      "fan_power_watts",
      latest[key(fan.path, "fan_power_watts")],
    );
    // Stopped while commanded to run is a failure; switched off is a choice, shown but not red.
    let status = ["ok", "running"];
    if (level === 0) status = ["warn", "switched off"];
    else if (rpm === 0) status = ["crit", "stopped"];
    else if (rpm === undefined || rpm === null) status = ["unknown", "no reading"];
    const stateEl = card.querySelector(".fan-state");
    stateEl.textContent = status[1];
    stateEl.dataset.level = status[0];
    card.classList.toggle("fan-failed", failed || status[0] === "crit");
    if (failed) badges.push(["crit", `${fanName(fan.path)} failed`]);
    else if (status[0] === "crit") badges.push(["crit", `${fanName(fan.path)} stopped`]);
  }
  document.getElementById("health").replaceChildren(
    // "healthy" only once there is something to judge by.
    ...(badges.length || temp === undefined ? badges : [["ok", "healthy"]]).map(([level, text]) =>
      el("span", `flag flag-${level}`, text),
    ),
  );
  setClock(newest);
}

// Health 0-100 and seed 002's criticity (GET /health/now): a chip beside the state, its reasons,
// the predicted score and the next failure in its title. Hidden when the server runs without
// the intelligence (503) or does not know this server yet.
async function refreshHealth() {
  const chip = document.getElementById("health-score");
  let health = null;
  try {
    health = (await getJSON("/health/now", { entity })).entities?.[entity] ?? null;
  } catch (error) {
    console.warn("health:", error.message);
  }
  chip.hidden = health === null;
  if (health === null) return;
  chip.dataset.criticity = health.criticity;
  chip.replaceChildren(
    el("span", "health-label", "health"),
    el("span", "health-value", health.score.toFixed(0)),
    el("span", "health-class", health.criticity),
  );
  const lines = [
    `Health ${health.score.toFixed(1)} / 100 (${health.criticity}); ` +
      `in an hour ${health.predicted_score.toFixed(1)} (${health.predicted_criticity})`,
    ...health.reasons.map((r) => `− ${r.penalty.toFixed(0)}: ${r.detail} (${r.entity})`),
  ];
  const next = health.next_failure;
  if (next) {
    lines.push(`Next failure: ${next.entity}, ${next.what}, in ${formatDuration(next.eta_s)}`);
  }
  chip.title = lines.join("\n");
}

// Active alerts on the server and its parts: GET /states's counts, else the alerts panel's.
function alertCounts() {
  const counts = states[entity]?.alerts;
  if (counts) return { critical: counts.critical ?? 0, warning: counts.warning ?? 0 };
  const listed = [...(alertsPanel?.alerts.values() ?? [])];
  const n = (level) => listed.filter((a) => a.level === level).length;
  return { critical: n("critical"), warning: n("warning") };
}

// The header says the worst state of the server and its parts (a failed fan makes the server
// FAILED here, whatever the server's own state), which part it comes from, and the alert
// counts; then its own state, reason and since when. And the maintenance button.
function drawState() {
  const own = states[entity];
  const state = own?.state ?? "UNKNOWN";
  const rollup = rollupOf(entity, states);
  document.getElementById("page").dataset.state = rollup.state;
  const hero = document.getElementById("hero-state");
  hero.dataset.state = rollup.state;
  hero.dataset.own = state;
  const chip = stateChip(rollup.state, own?.usage, "big");
  if (rollup.from && rollup.from !== entity) {
    chip.title = `${rollup.state} because of ${rollup.from}; ${entity} itself is ${state}`;
  }
  const parts = [chip];
  if (rollup.from && rollup.from !== entity) {
    parts.push(el("span", "rollup-from", `from ${rollup.from.slice(entity.length + 1)}`));
  }
  hero.replaceChildren(...parts);
  const counts = alertCounts();
  const badges = document.getElementById("hero-alerts");
  badges.replaceChildren(
    ...["critical", "warning"].map((level) => {
      const badge = el("span", `alert-count-badge lvl-${level}`, `${counts[level]} ${level}`);
      badge.dataset.level = level;
      badge.dataset.count = String(counts[level]);
      return badge;
    }),
  );
  badges.title = "Active alerts on this server and its fans";
  const reason = document.getElementById("state-reason");
  const since = own?.sinceMs ? `since ${formatTime(own.sinceMs)}` : "";
  const self = rollup.state !== state ? `The server itself: ${state}` : "";
  reason.textContent = own ? [self, since, own.reason].filter(Boolean).join(" · ") : "";
  reason.hidden = !reason.textContent;
  const toggle = document.getElementById("maintenance-toggle");
  const inMaintenance = state === "MAINTENANCE";
  toggle.setAttribute("aria-pressed", String(inMaintenance));
  toggle.textContent = inMaintenance ? "End maintenance" : "Start maintenance";
  toggle.title = inMaintenance
    ? "Alerts are notified again; the state comes back from the telemetry"
    : "Alerts on this server and its fans are still recorded but nobody is notified";
}

async function toggleMaintenance() {
  const inMaintenance = states[entity]?.state === "MAINTENANCE";
  const answer = inMaintenance
    ? await act(
        "DELETE",
        `/maintenance/${entityPath(entity)}`,
        undefined,
        `${entity}: maintenance ended.`,
        {
          ask: {
            title: `End maintenance of ${entity}?`,
            lines: [
              "Its alerts are notified again (console, e-mail, webhooks...) from now on, and " +
                "its state comes back from the telemetry.",
            ],
            confirm: "End maintenance",
          },
        },
      )
    : await act(
        "POST",
        "/maintenance",
        { entity, reason: "set from the dashboard" },
        `${entity} is in maintenance: its alerts are recorded, nobody is notified.`,
        {
          ask: {
            title: `Put ${entity} in maintenance?`,
            lines: [
              `${entity} and its fans show MAINTENANCE. Their alerts are still recorded, but ` +
                "nobody is notified of them until maintenance ends.",
              "The fans stay under their controller as before.",
            ],
            confirm: "Start maintenance",
          },
        },
      );
  if (!answer) return;
  // Show the answer at once; the next /states read brings the reason and the time.
  states[entity] = { ...(states[entity] ?? {}), state: normaliseState(answer.state) };
  drawState();
  await refreshStates();
}

let frameQueued = false;
function queueDraw() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    drawReadings();
  });
}

function buildCharts() {
  const fanSeries = (metric) => fans.map((f) => [f.path, metric, fanName(f.path)]);
  const specs = [
    [
      "chart-temp",
      "cpu_temperature_celsius",
      [
        [entity, "cpu_temperature_celsius", "CPU"],
        [entity, "inlet_temperature_celsius", "Inlet"],
        [entity, "chassis_temperature_celsius", "Chassis"],
      ],
    ],
    ["chart-power", "power_watts", [[entity, "power_watts", "Server power"]]],
    // Utilisation on its full 0-100 % scale: 12 % should look like 12 %, not like a peak.
    [
      "chart-util",
      "cpu_utilization_ratio",
      [[entity, "cpu_utilization_ratio", "CPU"]],
      { yRange: [0, 100] },
    ],
    ["chart-airflow", "airflow_cfm", [[entity, "airflow_cfm", "Airflow"]]],
    ["chart-rpm", "fan_rpm", fanSeries("fan_rpm")],
    [
      "chart-level",
      "fan_level",
      fanSeries("fan_level"),
      { stepped: true, yRange: [-0.3, 3.3], ySplits: [0, 1, 2, 3] },
    ],
  ];
  for (const [id, metric, series, extra = {}] of specs) {
    charts.add(document.getElementById(id), { metric, series, ...extra });
  }
}

// The charts' range now: a preset ends at the newest sample (the data's clock).
function currentView() {
  return charts.view();
}

// The readings now, and the data's clock, from /live.
async function loadLive() {
  const live = await getJSON("/live", { entity: `${entity}/**` });
  for (const [e, metrics] of Object.entries(live.entities ?? {})) {
    for (const [m, reading] of Object.entries(metrics)) latest[key(e, m)] = reading.value;
  }
  newest = Math.max(newest, newestTs(live));
  queueDraw();
}

function buildCandleControls() {
  const select = document.getElementById("candle-series");
  const groups = [
    [
      "This server",
      KPI_METRICS.filter((m) => m !== "disk_ok").map((m) => [entity, m, metricLabel(m)]),
    ],
    ...fans.map((f) => [
      fanName(f.path),
      [
        [f.path, "fan_rpm", `${fanName(f.path)} speed`],
        [f.path, "fan_power_watts", `${fanName(f.path)} power`],
      ],
    ]),
  ];
  for (const [label, options] of groups) {
    const group = document.createElement("optgroup");
    group.label = label;
    for (const [e, m, text] of options) {
      const option = el("option", "", text);
      option.value = key(e, m);
      group.append(option);
    }
    select.append(group);
  }
  select.value = key(entity, "cpu_temperature_celsius");
  select.addEventListener("change", () => loadCandles());
  document.getElementById("candle-step").addEventListener("change", () => loadCandles());
}

function candleChoice() {
  const [e, m] = document.getElementById("candle-series").value.split("|");
  let step = document.getElementById("candle-step").value;
  if (step === "auto") {
    const v = currentView();
    step = v.to - v.from <= AUTO_CANDLES_UP_TO_MS ? "1m" : "1h";
  }
  return { e, m, step, spec: CANDLES[step] };
}

async function loadCandles() {
  const token = ++candleToken; // A newer choice wins over a slower, older answer.
  const { e, m, step, spec } = candleChoice();
  const summary = document.getElementById("candle-summary");
  clearTimeout(candleTimer);
  candleTimer = setTimeout(loadCandles, spec.refreshMs);
  const v = currentView();
  candle.setWindow(v.from, v.to);
  try {
    const answer = await getJSON("/series", {
      entity: e,
      metric: m,
      from: Math.floor(v.from),
      to: Math.ceil(v.to) + 1,
      step,
    });
    if (token !== candleToken) return;
    const s = (answer.series ?? []).find((x) => x.entity === e && x.metric === m);
    const bucketMs = answer.bucket_ms ?? spec.bucketMs;
    if (s && !s.open) {
      summary.textContent = `Tier "${answer.tier}" came back without open/high/low/close.`;
      candle.setData(null, bucketMs, m);
      return;
    }
    candle.setData(s ? { ...s, ts: s.ts ?? bucketStarts(answer, s) } : null, bucketMs, m);
    // No candle count here: the live stream adds candles between two reloads.
    const gaps = s?.gaps?.length ?? 0;
    const gapText = gaps
      ? ` ${gaps} missing bucket${gaps === 1 ? " is" : "s are"} left empty.`
      : "";
    const follows = v.live ? "; the newest follows the live stream" : "";
    summary.textContent =
      `${metricLabel(m)} of ${e}, ${spec.name} candles from the ${answer.tier} tier${follows}.` +
      `${gapText} Green: closed higher than it opened; red: lower; faded: samples missing.`;
  } catch (error) {
    if (token === candleToken) summary.textContent = `Could not load candles: ${error.message}`;
  }
}

async function loadEvents() {
  try {
    const { events } = await getJSON("/events", { entity: `${entity}/**`, limit: 100 });
    feed.render(events, inventory);
  } catch (error) {
    console.warn("events:", error.message);
  }
}

// What a fault kind's target means for this server (twin/faults.py: Target).
function faultTargets(target, server) {
  const rack = server.attributes?.rack ?? server.parent;
  const fanOptions = fans.map((f) => [f.path, `${fanName(f.path)} (${f.path})`]);
  const self = [[entity, `this server (${entity})`]];
  switch (target) {
    case "fan":
      return fanOptions;
    case "server":
    case "servers":
    case "sensor":
    case "sensors":
      return self;
    case "rack":
      return rack ? [[rack, `rack ${rack} (every server in it)`]] : [];
    case "pdu":
      return inventory
        .filter((x) => x.kind === "pdu" && (x.parent === rack || x.path.startsWith(`${rack}/`)))
        .map((x) => [x.path, `PDU ${x.path} (the whole rack)`]);
    case "crac":
      return inventory
        .filter((x) => x.kind === "crac")
        .map((x) => [x.path, `CRAC ${x.path} (the whole room)`]);
    default:
      return [];
  }
}

// The twin's fault catalogue (GET /twin/faults) as a small form; only with the twin running.
async function buildFaultPanel(server) {
  let kinds;
  try {
    const status = await getJSON("/status");
    if (!status.scenario) return; // Real sources: there is no twin to break.
    kinds = (await getJSON("/twin/faults")).kinds ?? {};
  } catch (error) {
    console.warn("faults:", error.message);
    return;
  }
  // The server's own parts first (fans, then the server), then what it shares (rack, room).
  const near = ["fan", "server", "servers", "sensor", "sensors", "pdu", "rack", "crac"];
  const rank = (spec) => (near.includes(spec.target) ? near.indexOf(spec.target) : near.length);
  const usable = Object.entries(kinds)
    .filter(([, spec]) => faultTargets(spec.target, server).length)
    .sort(([a, x], [b, y]) => rank(x) - rank(y) || a.localeCompare(b));
  if (!usable.length) return;
  const kindSelect = document.getElementById("fault-kind");
  const targetSelect = document.getElementById("fault-target");
  const duration = document.getElementById("fault-duration");
  const description = document.getElementById("fault-description");
  kindSelect.replaceChildren(
    ...usable.map(([kind]) => {
      const option = el("option", "", kind.replaceAll("_", " "));
      option.value = kind;
      return option;
    }),
  );
  const choose = () => {
    const spec = kinds[kindSelect.value];
    const targets = faultTargets(spec.target, server);
    const previous = targetSelect.value;
    targetSelect.replaceChildren(
      ...targets.map(([path, text]) => {
        const option = el("option", "", text);
        option.value = path;
        return option;
      }),
    );
    if (targets.some(([path]) => path === previous)) targetSelect.value = previous;
    const defaults = spec.defaults ?? {};
    const hasDuration = "duration_s" in defaults;
    duration.disabled = !hasDuration;
    duration.value = "";
    duration.placeholder = !hasDuration
      ? "n/a"
      : defaults.duration_s === null
        ? "until cleared"
        : `default ${defaults.duration_s}`;
    description.textContent = spec.description ?? "";
  };
  // The classic failure is the default choice: a fan that stops.
  if (kinds.fan_off && usable.some(([kind]) => kind === "fan_off")) kindSelect.value = "fan_off";
  kindSelect.addEventListener("change", choose);
  choose();
  document.getElementById("fault-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const button = document.getElementById("fault-inject");
    const spec = kinds[kindSelect.value];
    busy(button, () => injectFault(kindSelect.value, spec, targetSelect.value, duration));
  });
  document.getElementById("fault-panel").hidden = false;
}

async function injectFault(kind, spec, target, durationInput) {
  const body = { kind, entity: target };
  const seconds = Number(durationInput.value);
  const custom = !durationInput.disabled && durationInput.value !== "" && seconds > 0;
  if (custom) body.params = { duration_s: seconds };
  const name = kind.replaceAll("_", " ");
  const defaults = spec?.defaults ?? {};
  let lasts = "";
  if (custom) lasts = `It lasts ${formatDuration(seconds)} of data time.`;
  else if (defaults.duration_s === null) {
    lasts = "It has no end: the part stays broken while the twin runs (give a duration to end it).";
  } else if (Number.isFinite(defaults.duration_s)) {
    lasts = `It lasts ${formatDuration(defaults.duration_s)} of data time (the default).`;
  }
  const answer = await act(
    "POST",
    "/twin/faults",
    body,
    `${name} injected on ${target}: the twin starts it at its next step.`,
    {
      ask: {
        title: `Inject "${name}" on ${target}?`,
        lines: [
          spec?.description ?? "",
          `The twin simulates it from its next step. ${lasts}`.trim(),
          "Alerts fire and notifications are sent as for a real failure; the fan controller " +
            "reacts to it.",
        ].filter(Boolean),
        confirm: "Inject fault",
      },
    },
  );
  if (!answer) return;
  // The fault.injected event and the first alerts follow within a few twin steps.
  setTimeout(() => {
    loadEvents();
    refreshStates();
    alertsPanel?.refresh();
    charts.loadMarkers();
  }, 1_500);
}

function onData({ tsMs, data }) {
  newest = Math.max(newest, tsMs ?? 0);
  for (const [e, metrics] of Object.entries(data)) {
    for (const [m, v] of Object.entries(metrics)) latest[key(e, m)] = v;
  }
  queueDraw();
  if (!charts.push(tsMs, data) || !candle) return;
  const v = currentView();
  candle.setWindow(v.from, v.to);
  const { e, m } = candleChoice();
  if (data[e] && m in data[e]) candle.push(tsMs, data[e][m]);
}

async function main() {
  if (!entity) {
    fail("No server chosen: open this page from the overview (server.html?entity=c01/r01/s01).");
    return;
  }
  try {
    inventory = (await getJSON("/inventory")).entities;
  } catch (error) {
    fail(`Could not load the inventory: ${error.message}`);
    return;
  }
  const server = inventory.find((x) => x.path === entity);
  if (!server) {
    fail(`There is no entity "${entity}" in the inventory.`);
    return;
  }
  fans = inventory.filter((x) => x.kind === "fan" && (x.attributes?.server ?? x.parent) === entity);
  mountTokenBox(document.querySelector(".topbar-meta"));
  buildHeader(server);
  buildFans();
  document
    .getElementById("maintenance-toggle")
    .addEventListener("click", (event) => busy(event.currentTarget, toggleMaintenance));
  alertsPanel = new AlertsPanel({
    list: document.getElementById("alerts"),
    count: document.getElementById("alerts-count"),
    within: entity,
    nowMs: () => newest || Date.now(),
    serverOf: (path) => serverOf(path, inventory),
    onChange: () => {
      refreshStates();
      refreshFans();
    },
  });
  // Faults and alerts of this server, and of what it sits in (its rack, the room's cooling).
  charts = new PageCharts({
    entity,
    rangeBar: document.getElementById("range-bar"),
    section: document.getElementById("charts"),
    nowMs: () => newest || Date.now(),
    onRange: loadCandles,
    onMarkers: (markers) => candle?.setMarkers(markers),
  });
  feed = new EventFeed(document.getElementById("events"), {
    toggleHost: document.getElementById("events-tools"),
    empty: "No events for this server.",
    max: 20,
  });
  buildCharts();
  candle = new CandleChart(document.getElementById("candle-chart"), {
    metric: "cpu_temperature_celsius",
    onZoom: (from, to) => charts.picker.zoom(from, to),
  });
  buildCandleControls();

  startStream(
    { entity: `${entity}/**`, metrics: [...KPI_METRICS, ...FAN_METRICS] },
    {
      data: onData,
      alerts: (alerts) => {
        alertsPanel.ingest(alerts);
        loadEvents();
      },
      // After a drop, the store has what the stream missed: reload rather than leave a gap.
      reconnected: () => charts.reload(),
    },
  );

  const incidents = new IncidentsPanel({
    list: document.getElementById("incidents"),
    count: document.getElementById("incidents-count"),
    params: { entity, open: true },
    inventory: () => inventory,
    empty: "No open incident on this server.",
  });
  // Filled before the charts are drawn: cards arriving later would move the charts (and what
  // someone is dragging across) down the page.
  await incidents.refresh();
  await loadLive().catch((error) => console.warn("live:", error.message));
  // It re-reads itself now and then, also after a failure.
  await charts.reload();
  loadCandles();
  loadEvents();
  setInterval(loadEvents, EVENTS_REFRESH_MS);
  refreshFans();
  refreshStates();
  setInterval(refreshFans, FANS_REFRESH_MS);
  setInterval(refreshStates, STATES_REFRESH_MS);
  refreshHealth();
  setInterval(refreshHealth, HEALTH_REFRESH_MS);
  setInterval(() => incidents.refresh(), INCIDENTS_REFRESH_MS);
  alertsPanel.start();
  setInterval(() => alertsPanel.tick(), 1_000);
  buildFaultPanel(server);
}

main();
