// Room overview: room totals and their history (IT and facility power, PUE, hottest CPU over
// the chosen time range, with faults and alerts marked), racks as columns of servers coloured
// by CPU temperature and framed by device state, active alerts grouped by rule (acknowledge one
// or many from here) and events (INFO hidden unless asked). Initial state from REST
// (/inventory, /live, /states, /alerts, /events, /series); then the WebSocket keeps it live.
// The intelligence (intelligence.js): health and criticity of the room, each cluster, rack and
// server (/health/now), the incidents (/incidents), fan failure predictions (/predictions) and
// the KPIs of /status's `intelligence`, each read again every few seconds.

import { LiveSocket, bindIndicator, getJSON, newestTs } from "./api.js";
import { AlertsPanel, loadStates, rollupOf, stateChip } from "./alerts.js";
import { TimeChart, lineOf, maxLine } from "./charts.js";
import { mountTokenBox } from "./control.js";
import { loadMarkers } from "./markers.js";
import { RangePicker, describeStep, rangeFromUrl, view } from "./timerange.js";
import { EventFeed, serverOf, setClock, showScenario } from "./ui.js";
import {
  IncidentsPanel,
  fillHealthChip,
  healthChip,
  loadHealth,
  renderKpis,
  renderPredictions,
} from "./intelligence.js";
import { TEMP_STOPS, formatValue, formatWatts, tempColor, tempGradientCss } from "./format.js";

const SERVER_METRICS = [
  "cpu_temperature_celsius",
  "power_watts",
  "cpu_utilization_ratio",
  "disk_ok",
];
const FAN_METRICS = ["fan_level", "fan_rpm"];
const ROOM_METRICS = ["it_power_watts", "facility_power_watts", "pue_ratio"];
const CRAC_METRICS = ["crac_supply_temperature_celsius", "crac_power_watts"];
const PDU_METRICS = ["pdu_power_watts", "pdu_capacity_watts"];
const ALL_METRICS = [
  ...SERVER_METRICS,
  ...FAN_METRICS,
  ...ROOM_METRICS,
  ...CRAC_METRICS,
  ...PDU_METRICS,
];

// Stat boxes in index.html, by the entity and metric that fill them.
const TOTALS = {
  "room|it_power_watts": "it-power",
  "room|facility_power_watts": "facility-power",
  "room|pue_ratio": "pue",
  "room/crac1|crac_supply_temperature_celsius": "crac-supply",
  "room/crac1|crac_power_watts": "crac-power",
};

const EVENTS_REFRESH_MS = 5_000;
const STATES_REFRESH_MS = 5_000;
// The server computes health at most every 5 s: reading it more often shows nothing new.
const HEALTH_REFRESH_MS = 5_000;
// Without the intelligence (/health/now answers 503) ask again only now and then.
const HEALTH_RETRY_MS = 60_000;
const INCIDENTS_REFRESH_MS = 10_000;
const PREDICTIONS_REFRESH_MS = 10_000;
const STATUS_REFRESH_MS = 10_000;
// Incidents closed longer ago than this (data time) drop off the panel.
const INCIDENTS_FROM = "-6h";
// Room history: raw rows between two reads come from the stream; buckets only from the store.
const HISTORY_REFRESH_MS = 30_000;
const BUCKETS_REFRESH_MS = 10_000;
const HOTTEST = "cpu_temperature_celsius";
// A server whose newest CPU temperature is older than this (on the data's clock) is shown stale.
const STALE_MS = 30_000;

// Latest value per entity and metric; the DOM is redrawn from here, never read back.
const state = new Map();
const tiles = new Map(); // server path -> tile element
const racks = new Map(); // rack path -> {pdu bar elements}
const fansOf = new Map(); // server path -> [fan paths]
let inventory = [];
let newest = 0;
let states = {}; // path -> {state, sinceMs, reason, usage, rollup...} from GET /states
let health = null; // path -> health from GET /health/now; null: no intelligence (or not yet)
let picker = null;
let feed = null;
let roomCharts = []; // [{chart, keys: ["room|it_power_watts", ...]}] ("*|hottest": the max)
let historyToken = 0;
let historyTimer = null;

// Keeps the newer of two readings: a REST snapshot may land after fresher stream messages.
function remember(entity, metric, value, tsMs) {
  if (!state.has(entity)) state.set(entity, {});
  const readings = state.get(entity);
  const known = readings[metric];
  if (known && tsMs !== undefined && known.tsMs > tsMs) return;
  readings[metric] = { value, tsMs };
}

function valueOf(entity, metric) {
  return state.get(entity)?.[metric]?.value;
}

function drawLegend() {
  document.getElementById("temp-legend-bar").style.background = tempGradientCss();
  const ticks = document.getElementById("temp-legend-ticks");
  const lo = TEMP_STOPS[0][0];
  const span = TEMP_STOPS[TEMP_STOPS.length - 1][0] - lo;
  ticks.replaceChildren(
    ...TEMP_STOPS.map(([t]) => {
      const tick = document.createElement("span");
      tick.style.left = `${((t - lo) / span) * 100}%`;
      tick.textContent = `${t}°`;
      return tick;
    }),
  );
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function buildFloor() {
  const container = document.getElementById("racks");
  const byKind = (kind) => inventory.filter((e) => e.kind === kind);
  const servers = byKind("server");
  for (const fan of byKind("fan")) {
    const server = fan.attributes?.server ?? fan.parent;
    if (!fansOf.has(server)) fansOf.set(server, []);
    fansOf.get(server).push(fan.path);
  }
  const rackList = byKind("rack").map((rack) => ({
    path: rack.path,
    slots: rack.attributes?.slots ?? 0,
    members: servers.filter((s) => (s.attributes?.rack ?? s.parent) === rack.path),
  }));
  // Servers outside any known rack (real hosts, for one) still get a column, in path order.
  const racked = new Set(rackList.flatMap((r) => r.members.map((s) => s.path)));
  const loose = servers.filter((s) => !racked.has(s.path));
  if (loose.length) {
    loose.forEach((s, i) => {
      s.attributes = { ...s.attributes, slot: loose.length - i };
    });
    rackList.push({ path: "Other servers", slots: 0, members: loose, pdu: false });
  }
  const columns = rackList.map((rack) => {
    const slots = Math.max(rack.slots, ...rack.members.map((s) => slotOf(s)));
    const column = el("section", "rack");
    column.setAttribute("aria-label", `Rack ${rack.path}`);
    const head = el("header", "rack-head");
    const title = el("div", "rack-title");
    title.append(el("h3", "rack-name", rack.path));
    head.append(title);
    if (rack.pdu !== false) title.append(healthChip(rack.path, null, { mini: true }));
    if (rack.pdu !== false) {
      const pdu = el("div", "pdu");
      const bar = el("div", "pdu-bar");
      const fill = el("span", "pdu-fill");
      bar.append(fill);
      const text = el("span", "pdu-text", "PDU —");
      pdu.append(bar, text);
      head.append(pdu);
      racks.set(rack.path, { fill, text, health: title.querySelector(".health-chip") });
    }
    const body = el("ol", "rack-slots");
    // Top slot first, so slot 1 sits at the bottom as in a real rack.
    for (let slot = slots; slot >= 1; slot -= 1) {
      const server = rack.members.find((s) => slotOf(s) === slot);
      const li = el("li", server ? "slot" : "slot slot-empty");
      li.dataset.slot = String(slot);
      if (server) li.append(makeTile(server.path));
      else li.setAttribute("aria-hidden", "true");
      body.append(li);
    }
    column.append(head, body);
    return column;
  });
  container.replaceChildren(...columns);
  if (columns.length === 0) {
    container.append(el("p", "placeholder", "No rack in the inventory yet."));
  }
  container.removeAttribute("aria-busy");
}

function slotOf(server) {
  return Number(server.attributes?.slot ?? 0);
}

function makeTile(path) {
  const tile = el("a", "tile");
  tile.href = `server.html?entity=${path}`;
  tile.dataset.entity = path;
  tile.append(
    el("span", "tile-name", path.split("/").pop()),
    el("span", "tile-temp", "—"),
    el("span", "tile-sub"),
    el("span", "tile-flags"),
  );
  tile.dataset.state = "UNKNOWN";
  tiles.set(path, tile);
  return tile;
}

// Health flags: a failed disk, a fan the alert engine calls FAILED (or, before it has, one
// that stopped while commanded to run), a fan switched off, or no fresh reading at all.
function healthFlags(path) {
  const flags = [];
  const disk = valueOf(path, "disk_ok");
  if (disk !== undefined && disk !== null && disk < 0.5) flags.push(["crit", "disk failed"]);
  for (const fan of fansOf.get(path) ?? []) {
    const level = valueOf(fan, "fan_level");
    const rpm = valueOf(fan, "fan_rpm");
    const name = fan.split("/").pop();
    if (states[fan]?.state === "FAILED") flags.push(["crit", `${name} failed`]);
    else if (level === 0) flags.push(["warn", `${name} off`]);
    else if (rpm === 0) flags.push(["crit", `${name} stopped`]);
  }
  const temp = state.get(path)?.cpu_temperature_celsius;
  if (temp && newest - temp.tsMs > STALE_MS) flags.push(["warn", "stale"]);
  else if (temp && temp.value === null) flags.push(["warn", "no reading"]);
  return flags;
}

function drawTile(path) {
  const tile = tiles.get(path);
  if (!tile) return;
  const temp = valueOf(path, "cpu_temperature_celsius");
  const color = tempColor(temp);
  tile.style.setProperty("--tile-bg", color ?? "var(--tile-unknown)");
  tile.classList.toggle("tile-unknown", color === null);
  tile.querySelector(".tile-temp").textContent = formatValue("cpu_temperature_celsius", temp);
  const power = formatValue("power_watts", valueOf(path, "power_watts"));
  const util = formatValue("cpu_utilization_ratio", valueOf(path, "cpu_utilization_ratio"));
  tile.querySelector(".tile-sub").textContent = `${power} · CPU ${util}`;
  const flags = healthFlags(path);
  // The frame is the device state (GET /states); a failing part the sensors show before the
  // alert engine has judged it still gets a red frame.
  // The frame is the worst of the server and its fans: a server whose fan failed is not OK.
  const device = states[path];
  const rollup = rollupOf(path, states);
  const state = rollup.state;
  tile.dataset.state = state;
  tile.classList.toggle(
    "tile-alert",
    flags.some(([level]) => level === "crit"),
  );
  tile
    .querySelector(".tile-flags")
    .replaceChildren(
      stateChip(state, device?.usage, "tile-state"),
      ...(health?.[path] ? [healthChip(path, health[path], { mini: true })] : []),
      ...flags.map(([level, text]) => el("span", `flag flag-${level}`, text)),
    );
  const tempText = formatValue("cpu_temperature_celsius", temp);
  const usage = device?.usage ? ` (${device.usage})` : "";
  const reason = device?.reason ? `: ${device.reason}` : "";
  const from = rollup.from && rollup.from !== path ? ` (from ${rollup.from})` : "";
  tile.title = `${path}: ${state}${from}${reason}; CPU ${tempText}, ${power}, CPU ${util}${usage}`;
}

function drawPdu(rack) {
  const parts = racks.get(rack);
  if (!parts) return;
  const power = valueOf(`${rack}/pdu`, "pdu_power_watts");
  const capacity = valueOf(`${rack}/pdu`, "pdu_capacity_watts");
  const load = power != null && capacity ? Math.min(1, power / capacity) : 0;
  parts.fill.style.width = `${(load * 100).toFixed(1)}%`;
  parts.fill.dataset.level = load > 0.9 ? "crit" : load > 0.75 ? "warn" : "ok";
  const text = `${formatValue("pdu_power_watts", power)} / ${formatWatts(capacity)}`;
  parts.text.textContent = power == null ? "PDU —" : `PDU ${text}`;
}

function drawTotals() {
  for (const [key, id] of Object.entries(TOTALS)) {
    const [entity, metric] = key.split("|");
    document.getElementById(id).textContent = formatValue(metric, valueOf(entity, metric));
  }
  let hottest = null;
  for (const path of tiles.keys()) {
    const t = valueOf(path, "cpu_temperature_celsius");
    if (t !== null && t !== undefined && (hottest === null || t > hottest.t)) hottest = { path, t };
  }
  document.getElementById("hottest").textContent = formatValue(
    "cpu_temperature_celsius",
    hottest?.t,
  );
  const link = document.getElementById("hottest-server");
  link.hidden = hottest === null;
  if (hottest && link.textContent !== hottest.path) {
    link.textContent = hottest.path;
    link.href = `server.html?entity=${hottest.path}`;
  }
}

// Health of the room, its clusters and racks (the tiles draw their own, in drawTile).
function drawHealth() {
  const room = document.getElementById("room-health");
  if (health?.room) room.replaceChildren(healthChip("room", health.room));
  else room.textContent = "—";
  const clusters = inventory.filter((e) => e.kind === "cluster").map((e) => e.path);
  const row = document.getElementById("cluster-health");
  row.replaceChildren(
    ...clusters
      .filter((path) => health?.[path])
      .map((path) => {
        const item = el("span", "health-item");
        item.append(el("span", "health-item-name", path), healthChip(path, health[path], { mini: true }));
        return item;
      }),
  );
  racks.forEach((parts, rack) => {
    if (parts.health) fillHealthChip(parts.health, rack, health?.[rack], { mini: true });
  });
}

function drawAll() {
  tiles.forEach((_, path) => drawTile(path));
  racks.forEach((_, rack) => drawPdu(rack));
  drawTotals();
  drawHealth();
  setClock(newest);
}

// Redraw at most once a frame however fast messages arrive (a fast twin sends several a second).
let frameQueued = false;
function queueDraw() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    drawAll();
  });
}

async function refreshStates() {
  try {
    states = await loadStates();
    queueDraw();
  } catch (error) {
    console.warn("states:", error.message);
  }
}

async function refreshHealth() {
  health = await loadHealth();
  queueDraw();
  setTimeout(refreshHealth, health === null ? HEALTH_RETRY_MS : HEALTH_REFRESH_MS);
}

async function refreshPredictions() {
  try {
    const { predictions } = await getJSON("/predictions");
    renderPredictions(document.getElementById("predictions"), predictions ?? [], inventory);
    const count = document.getElementById("predictions-count");
    const active = (predictions ?? []).filter((p) => p.status !== "cleared").length;
    count.hidden = active === 0;
    count.textContent = String(active);
    count.dataset.level = "warning";
  } catch (error) {
    console.warn("predictions:", error.message);
  }
}

// The scenario chip and the intelligence's KPIs (a dash for each figure it does not give).
async function refreshStatus() {
  try {
    const status = await getJSON("/status");
    showScenario(status);
    renderKpis(status);
  } catch (error) {
    console.warn("status:", error.message);
    renderKpis(null);
  }
}

async function loadEvents() {
  try {
    // More than are shown: INFO events are hidden unless asked, and they are the many.
    const { events } = await getJSON("/events", { limit: 200 });
    feed.render(events, inventory);
  } catch (error) {
    console.warn("events:", error.message);
  }
}

function buildRoomCharts() {
  const zoom = (from, to) => picker.zoom(from, to);
  const specs = [
    [
      "chart-room-power",
      "power_watts",
      [
        ["room|it_power_watts", "IT power"],
        ["room|facility_power_watts", "Facility power"],
      ],
    ],
    ["chart-room-pue", "pue_ratio", [["room|pue_ratio", "PUE"]]],
    ["chart-room-hottest", HOTTEST, [[`*|${HOTTEST}`, "Hottest CPU"]]],
  ];
  roomCharts = specs.map(([id, metric, series]) => ({
    keys: series.map(([k]) => k),
    chart: new TimeChart(document.getElementById(id), {
      metric,
      series: series.map(([, label]) => ({ label })),
      onZoom: zoom,
    }),
  }));
}

function currentView() {
  return view(picker.range, newest || Date.now());
}

// Room history over the range: room totals, and every server's CPU temperature for the max.
async function loadRoomHistory() {
  const token = ++historyToken;
  clearTimeout(historyTimer);
  const v = currentView();
  historyTimer = setTimeout(
    () => loadRoomHistory().catch((error) => console.warn("room history:", error.message)),
    v.live && v.step === null ? HISTORY_REFRESH_MS : BUCKETS_REFRESH_MS,
  );
  for (const { chart } of roomCharts) chart.setWindow(v.from, v.to);
  picker.show(describeStep(v.stepMs));
  loadMarkers(v.from, v.to)
    .then((markers) => roomCharts.forEach(({ chart }) => chart.setMarkers(markers)))
    .catch((error) => console.warn("markers:", error.message));
  const range = { from: Math.floor(v.from), to: Math.ceil(v.to) + 1, step: v.step };
  const [room, cpus] = await Promise.all([
    getJSON("/series", { entity: "room", metric: ROOM_METRICS, ...range }),
    getJSON("/series", { entity: "**", metric: HOTTEST, ...range }),
  ]);
  if (token !== historyToken) return;
  const lines = new Map();
  for (const s of room.series ?? []) lines.set(`${s.entity}|${s.metric}`, lineOf(room, s));
  lines.set(`*|${HOTTEST}`, maxLine(cpus));
  const keepLive = v.live && v.step === null;
  for (const { chart, keys } of roomCharts) {
    chart.setHistory(
      keys.map((k) => lines.get(k)),
      { keepLive },
    );
  }
  document.getElementById("room-charts").dataset.step = v.step ?? "raw";
}

// A stream message on the room charts: the totals, and the hottest CPU now.
function pushRoom(tsMs, data) {
  const v = currentView();
  if (!v.live) return;
  let hottest;
  for (const path of tiles.keys()) {
    const t = data[path]?.[HOTTEST];
    if (t !== null && t !== undefined && (hottest === undefined || t > hottest)) hottest = t;
  }
  for (const { chart, keys } of roomCharts) {
    chart.setWindow(v.from, v.to);
    if (v.step !== null) continue;
    const values = keys.map((k) => {
      const [e, m] = k.split("|");
      return e === "*" ? hottest : data[e]?.[m];
    });
    if (values.some((x) => x !== undefined)) chart.push(tsMs, values);
  }
}

function onRange() {
  loadRoomHistory().catch((error) => console.warn("room history:", error.message));
}

async function main() {
  drawLegend();
  mountTokenBox(document.querySelector(".topbar-meta"));
  feed = new EventFeed(document.getElementById("events"), {
    toggleHost: document.getElementById("events-tools"),
  });
  const alerts = new AlertsPanel({
    list: document.getElementById("alerts"),
    count: document.getElementById("alerts-count"),
    nowMs: () => newest || Date.now(),
    serverOf: (path) => serverOf(path, inventory),
    onChange: () => refreshStates(),
  });
  const socket = new LiveSocket({ entity: "**", metrics: ALL_METRICS, max_rate_hz: 4 });
  bindIndicator(document.getElementById("conn"), socket);
  socket.addEventListener("data", ({ detail }) => {
    newest = Math.max(newest, detail.tsMs ?? 0);
    for (const [entity, metrics] of Object.entries(detail.data)) {
      for (const [metric, value] of Object.entries(metrics)) {
        remember(entity, metric, value, detail.tsMs);
      }
    }
    queueDraw();
    if (roomCharts.length) pushRoom(detail.tsMs, detail.data);
  });
  // Alerts come with the stream: the panel shows them at once, then /alerts and /events (the
  // record) are read again.
  socket.addEventListener("alerts", ({ detail }) => {
    alerts.ingest(detail.alerts);
    loadEvents();
  });
  socket.addEventListener("open", ({ detail }) => {
    if (detail.reconnected) loadSnapshot();
  });

  try {
    inventory = (await getJSON("/inventory")).entities;
  } catch (error) {
    document
      .getElementById("racks")
      .replaceChildren(
        el("p", "placeholder error", `Could not load the inventory: ${error.message}`),
      );
    return;
  }
  buildFloor();
  await Promise.all([loadSnapshot(), refreshStates()]);
  picker = new RangePicker(document.getElementById("range-bar"), {
    range: rangeFromUrl("1h"),
    nowMs: () => newest || Date.now(),
    onChange: onRange,
  });
  buildRoomCharts();
  socket.start();
  loadRoomHistory().catch((error) => console.warn("room history:", error.message));
  alerts.start();
  setInterval(() => alerts.tick(), 1_000);
  setInterval(refreshStates, STATES_REFRESH_MS);
  loadEvents();
  setInterval(loadEvents, EVENTS_REFRESH_MS);
  const incidents = new IncidentsPanel({
    list: document.getElementById("incidents"),
    count: document.getElementById("incidents-count"),
    params: { from: INCIDENTS_FROM },
    inventory: () => inventory,
    empty: "No incident in the last 6 hours.",
  });
  refreshHealth(); // it schedules its next read itself
  for (const [refresh, everyMs] of [
    [() => incidents.refresh(), INCIDENTS_REFRESH_MS],
    [refreshPredictions, PREDICTIONS_REFRESH_MS],
    [refreshStatus, STATUS_REFRESH_MS],
  ]) {
    refresh();
    setInterval(refresh, everyMs);
  }
}

// Current values from REST, so the page is filled before the first stream message arrives.
async function loadSnapshot() {
  try {
    const live = await getJSON("/live", { metric: ALL_METRICS });
    for (const [entity, metrics] of Object.entries(live.entities ?? {})) {
      for (const [metric, reading] of Object.entries(metrics)) {
        remember(entity, metric, reading.value, reading.ts_ms);
      }
    }
    newest = Math.max(newest, newestTs(live));
    drawAll();
  } catch (error) {
    console.warn("live snapshot:", error.message);
  }
}

main();
