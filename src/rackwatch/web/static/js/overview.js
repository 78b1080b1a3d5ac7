// Room overview: racks as columns of servers coloured by CPU temperature and framed by device
// state, room totals, active alerts (acknowledge from here) and events. Initial state from REST
// (/inventory, /live, /states, /alerts, /events); then the WebSocket keeps it live.

import { LiveSocket, bindIndicator, getJSON, newestTs } from "./api.js";
import { AlertsPanel, loadStates, stateChip } from "./alerts.js";
import { mountTokenBox } from "./control.js";
import { renderEvents, serverOf, setClock, showScenario } from "./ui.js";
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
// A server whose newest CPU temperature is older than this (on the data's clock) is shown stale.
const STALE_MS = 30_000;

// Latest value per entity and metric; the DOM is redrawn from here, never read back.
const state = new Map();
const tiles = new Map(); // server path -> tile element
const racks = new Map(); // rack path -> {pdu bar elements}
const fansOf = new Map(); // server path -> [fan paths]
let inventory = [];
let newest = 0;
let states = {}; // path -> {state, sinceMs, reason, usage} from GET /states

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
    head.append(el("h3", "rack-name", rack.path));
    if (rack.pdu !== false) {
      const pdu = el("div", "pdu");
      const bar = el("div", "pdu-bar");
      const fill = el("span", "pdu-fill");
      bar.append(fill);
      const text = el("span", "pdu-text", "PDU —");
      pdu.append(bar, text);
      head.append(pdu);
      racks.set(rack.path, { fill, text });
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
  const device = states[path];
  const state = device?.state ?? "UNKNOWN";
  tile.dataset.state = state;
  tile.classList.toggle(
    "tile-alert",
    flags.some(([level]) => level === "crit"),
  );
  tile
    .querySelector(".tile-flags")
    .replaceChildren(
      stateChip(state, device?.usage, "tile-state"),
      ...flags.map(([level, text]) => el("span", `flag flag-${level}`, text)),
    );
  const tempText = formatValue("cpu_temperature_celsius", temp);
  const usage = device?.usage ? ` (${device.usage})` : "";
  const reason = device?.reason ? `: ${device.reason}` : "";
  tile.title = `${path}: ${state}${reason}; CPU ${tempText}, ${power}, CPU ${util}${usage}`;
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

function drawAll() {
  tiles.forEach((_, path) => drawTile(path));
  racks.forEach((_, rack) => drawPdu(rack));
  drawTotals();
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

async function loadEvents() {
  try {
    const { events } = await getJSON("/events", { limit: 40 });
    renderEvents(document.getElementById("events"), events, inventory);
  } catch (error) {
    console.warn("events:", error.message);
  }
}

async function main() {
  drawLegend();
  mountTokenBox(document.querySelector(".topbar-meta"));
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
  socket.start();
  alerts.start();
  setInterval(() => alerts.tick(), 1_000);
  setInterval(refreshStates, STATES_REFRESH_MS);
  loadEvents();
  setInterval(loadEvents, EVENTS_REFRESH_MS);
  getJSON("/status")
    .then(showScenario)
    .catch(() => {}); // The scenario chip is a nicety; the page works without it.
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
