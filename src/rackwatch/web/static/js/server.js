// One server: live readings, its fans, 30 minutes of live charts (history from REST, then the
// WebSocket filtered to this server) and candlesticks of any of its series at 1 minute or 1 hour.

import { LiveSocket, bindIndicator, getJSON, newestTs } from "./api.js";
import { CandleChart, TimeChart } from "./charts.js";
import {
  FAN_LEVELS,
  formatPercent,
  formatValue,
  formatWatts,
  metricLabel,
  tempColor,
} from "./format.js";
import { renderEvents, setClock } from "./ui.js";

const WINDOW_MS = 30 * 60_000;
const EVENTS_REFRESH_MS = 10_000;
// The stream is a thinned, newest-only view; the store is the record. Re-read it now and then so
// the charts show every stored sample and every reported gap.
const HISTORY_REFRESH_MS = 30_000;
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
// Candles: how far back each resolution looks, and how often the stored rollups are re-read.
const CANDLES = {
  "1m": { spanMs: 2 * 3_600_000, bucketMs: 60_000, refreshMs: 10_000, name: "1-minute" },
  "1h": { spanMs: 48 * 3_600_000, bucketMs: 3_600_000, refreshMs: 60_000, name: "1-hour" },
};

const entity = new URLSearchParams(location.search).get("entity");
const latest = {}; // "entity|metric" -> newest value
let newest = 0;
let inventory = [];
let fans = [];
let charts = []; // [{chart, keys: ["entity|metric", ...]}]
let candle = null;
let candleToken = 0;
let candleTimer = null;

const key = (e, m) => `${e}|${m}`;
const fanName = (path) => `Fan ${path.split("/").pop().replace(/^fan/, "")}`;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

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

function buildFans() {
  const section = document.getElementById("fans");
  section.replaceChildren(
    ...fans.map((fan) => {
      const card = el("article", "panel fan-card");
      card.dataset.entity = fan.path;
      const head = el("header", "fan-head");
      head.append(el("h2", "", fanName(fan.path)), el("span", "fan-state", "—"));
      const levels = el("div", "fan-levels");
      levels.setAttribute("role", "img");
      FAN_LEVELS.forEach((name, level) => {
        const seg = el("span", "fan-level", name);
        seg.dataset.level = String(level);
        levels.append(seg);
      });
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
      card.append(head, levels, facts);
      return card;
    }),
  );
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
  for (const fan of fans) {
    const card = document.querySelector(`.fan-card[data-entity="${fan.path}"]`);
    const level = latest[key(fan.path, "fan_level")];
    const rpm = latest[key(fan.path, "fan_rpm")];
    const maxRpm = fan.attributes?.max_rpm;
    card.querySelectorAll(".fan-level").forEach((seg) => {
      const on = level !== undefined && level !== null && Number(seg.dataset.level) === level;
      seg.classList.toggle("active", on);
    });
    card
      .querySelector(".fan-levels")
      .setAttribute("aria-label", `Level ${formatValue("fan_level", level)}`);
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
    card.classList.toggle("fan-failed", status[0] === "crit");
    if (status[0] === "crit") badges.push(["crit", `${fanName(fan.path)} stopped`]);
  }
  document.getElementById("health").replaceChildren(
    // "healthy" only once there is something to judge by.
    ...(badges.length || temp === undefined ? badges : [["ok", "healthy"]]).map(([level, text]) =>
      el("span", `flag flag-${level}`, text),
    ),
  );
  setClock(newest);
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
  charts = specs.map(([id, metric, series, extra = {}]) => ({
    keys: series.map(([e, m]) => key(e, m)),
    chart: new TimeChart(document.getElementById(id), {
      metric,
      windowMs: WINDOW_MS,
      series: series.map(([, , label]) => ({ label })),
      ...extra,
    }),
  }));
}

// Last 30 minutes from the store, so the charts are full the moment the page opens.
async function loadHistory() {
  const live = await getJSON("/live", { entity: `${entity}/**` });
  for (const [e, metrics] of Object.entries(live.entities ?? {})) {
    for (const [m, reading] of Object.entries(metrics)) latest[key(e, m)] = reading.value;
  }
  newest = Math.max(newest, newestTs(live));
  queueDraw();
  const end = newest;
  const answer = await getJSON("/series", {
    entity: `${entity}/**`,
    metric: [...KPI_METRICS, ...FAN_METRICS],
    from: end - WINDOW_MS,
    to: end,
  });
  const byKey = new Map();
  for (const s of answer.series ?? []) {
    // Raw answers carry `value`; if the store chose a rollup tier, plot its averages.
    byKey.set(key(s.entity, s.metric), {
      ts: s.ts ?? bucketStarts(answer, s),
      value: s.value ?? s.avg ?? [],
      gaps: s.gaps ?? [],
    });
  }
  for (const { chart, keys } of charts) chart.setHistory(keys.map((k) => byKey.get(k)));
}

function bucketStarts(answer, s) {
  const n = (s.value ?? s.open ?? []).length;
  return Array.from({ length: n }, (_, i) => answer.from_ms + i * answer.bucket_ms);
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
  const step = document.getElementById("candle-step").value;
  return { e, m, step, spec: CANDLES[step] };
}

async function loadCandles() {
  const token = ++candleToken; // A newer choice wins over a slower, older answer.
  const { e, m, step, spec } = candleChoice();
  const summary = document.getElementById("candle-summary");
  clearTimeout(candleTimer);
  candleTimer = setTimeout(loadCandles, spec.refreshMs);
  try {
    const end = newest || Date.now();
    const answer = await getJSON("/series", {
      entity: e,
      metric: m,
      from: end - spec.spanMs,
      to: end,
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
    summary.textContent =
      `${metricLabel(m)} of ${e}, ${spec.name} candles from the ${answer.tier} tier; the newest ` +
      `follows the live stream.${gapText} Green: closed higher than it opened; red: lower; ` +
      "faded: samples missing.";
  } catch (error) {
    if (token === candleToken) summary.textContent = `Could not load candles: ${error.message}`;
  }
}

async function loadEvents() {
  try {
    const { events } = await getJSON("/events", { entity: `${entity}/**`, limit: 20 });
    renderEvents(document.getElementById("events"), events, inventory, {
      empty: "No events for this server.",
    });
  } catch (error) {
    console.warn("events:", error.message);
  }
}

function onData({ tsMs, data }) {
  newest = Math.max(newest, tsMs ?? 0);
  for (const [e, metrics] of Object.entries(data)) {
    for (const [m, v] of Object.entries(metrics)) latest[key(e, m)] = v;
  }
  for (const { chart, keys } of charts) {
    const values = keys.map((k) => {
      const [e, m] = k.split("|");
      return data[e]?.[m]; // undefined: not in this message; null: the sensor answered nothing.
    });
    if (values.some((v) => v !== undefined)) chart.push(tsMs, values);
  }
  const { e, m } = candleChoice();
  if (candle && data[e] && m in data[e]) candle.push(tsMs, data[e][m]);
  queueDraw();
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
  buildHeader(server);
  buildFans();
  buildCharts();
  candle = new CandleChart(document.getElementById("candle-chart"), {
    metric: "cpu_temperature_celsius",
  });
  buildCandleControls();

  const socket = new LiveSocket({
    entity: `${entity}/**`,
    metrics: [...KPI_METRICS, ...FAN_METRICS],
  });
  bindIndicator(document.getElementById("conn"), socket);
  socket.addEventListener("data", ({ detail }) => onData(detail));
  // After a drop, the store has what the stream missed: reload rather than leave a false gap.
  socket.addEventListener("open", ({ detail }) => {
    if (detail.reconnected) loadHistory().catch((error) => console.warn(error.message));
  });
  socket.start();

  try {
    await loadHistory();
  } catch (error) {
    console.warn("history:", error.message);
  }
  setInterval(
    () => loadHistory().catch((error) => console.warn(error.message)),
    HISTORY_REFRESH_MS,
  );
  loadCandles();
  loadEvents();
  setInterval(loadEvents, EVENTS_REFRESH_MS);
}

main();
