// One real machine (host.html?entity=host/<name>): online or offline (the server's word, GET
// /hosts: silent for `[host] offline_after_seconds`), its state and alerts, its facts from the
// inventory (OS, CPU and cores, memory, disks, addresses, GPU models, driver and CUDA versions),
// its readings now (the host, each GPU, disk, interface and sensor), its events, and charts
// over the page's time range with the server page's components (pagecharts.js: presets or
// custom, raw or from the rollup tiers, drag to zoom, alerts marked): CPU total and per core,
// memory, load, frequency, each disk's usage and I/O, network, temperatures, fans, and each
// GPU's utilisation, memory, temperature and power.
//
// Readings come from GET /live, then the stream; hosts keep the wall clock, so a range ends at
// the later of this host's newest sample and this browser's clock (a silent host's charts show
// its silence growing).

import { getJSON, startStream } from "./api.js";
import { AlertsPanel, stateChip } from "./alerts.js";
import { mountTokenBox } from "./control.js";
import {
  formatBytes,
  formatBytesOf,
  formatDateTime,
  formatDuration,
  formatHertz,
  formatPercent,
  formatRate,
  formatTime,
  formatValue,
  isMissing,
} from "./format.js";
import { PageCharts } from "./pagecharts.js";
import { EventFeed, el, frameQueue, lastSeenText, meter, onlinePill, setClock } from "./ui.js";
import { IncidentsPanel } from "./intelligence.js";

const EVENTS_REFRESH_MS = 10_000;
const HOST_REFRESH_MS = 4_000;
const INVENTORY_REFRESH_MS = 60_000;
// Its open incidents (GET /incidents): devices link to their own pages, so no inventory needed.
const INCIDENTS_REFRESH_MS = 10_000;

const entity = new URLSearchParams(location.search).get("entity");
const latest = new Map(); // "entity|metric" -> newest value
let inventory = new Map(); // path -> {kind, attributes}, this host and its parts
let row = null; // this host in GET /hosts: online, last seen, state, sizes, disks, GPUs
let rowAt = 0; // when it came (this browser's clock)
let newest = 0; // this host's newest sample
let charts = null;
let alertsPanel = null;
let feed = null;

const key = (e, m) => `${e}|${m}`;
const value = (e, m) => latest.get(key(e, m)) ?? null;
const segment = (path) => path.split("/").pop();
const attributesOf = (path) => inventory.get(path)?.attributes ?? {};
const nowMs = () => Math.max(newest, Date.now());
const byName = (a, b) => a.localeCompare(b, "en", { numeric: true });

// A part's kind: the inventory's, or for a part not listed (yet) its name's.
const KIND_OF_SEGMENT = [
  [/^cpu\d+$/, "cpu"],
  [/^disk-/, "disk"],
  [/^net-/, "nic"],
  [/^sensor-/, "sensor"],
  [/^fan-/, "fan"],
  [/^gpu\d+$/, "gpu"],
];

function kindOf(path) {
  const known = inventory.get(path)?.kind;
  if (known) return known;
  return KIND_OF_SEGMENT.find(([pattern]) => pattern.test(segment(path)))?.[1] ?? "other";
}

// The host's parts of one kind, listed or heard from, in natural order (cpu2 before cpu10).
function partsOf(kind) {
  const parts = new Set([...inventory.keys()]);
  for (const k of latest.keys()) parts.add(k.split("|")[0]);
  parts.delete(entity);
  return [...parts].filter((p) => p.startsWith(`${entity}/`) && kindOf(p) === kind).sort(byName);
}

const sum = (values) => {
  const known = values.filter((v) => !isMissing(v));
  return known.length ? known.reduce((a, b) => a + b, 0) : null;
};
const networkRate = (metric) => sum(partsOf("nic").map((n) => value(n, metric)));

function sensorLabel(path) {
  const a = attributesOf(path);
  return [a.chip, a.label].filter(Boolean).join(" ") || segment(path).replace(/^(sensor|fan)-/, "");
}

function fail(message) {
  const panel = el("section", "panel");
  const back = el("a", "", "Back to the hosts");
  back.href = "hosts.html";
  panel.append(el("p", "placeholder error", message), back);
  document.getElementById("page").replaceChildren(panel);
}

// ---- header and facts -------------------------------------------------------------------------

function buildHeader() {
  const name = row.name;
  document.title = `rackwatch · ${name}`;
  document.getElementById("host-name").textContent = name;
  const current = el("span", "", name);
  current.setAttribute("aria-current", "page");
  document.getElementById("crumbs").append(el("span", "crumb-sep", "›"), current);
}

function list(items) {
  const ul = el("ul", "fact-list");
  ul.append(...items.map((text) => el("li", "", text)));
  return items.length ? ul : null;
}

function drawFacts() {
  const f = attributesOf(entity);
  const cores = [
    Number.isFinite(f.physical_cores) ? `${f.physical_cores} cores` : null,
    Number.isFinite(f.logical_cores) ? `${f.logical_cores} threads` : null,
  ]
    .filter(Boolean)
    .join(", ");
  const models = new Map();
  for (const g of row.gpus) models.set(g.name ?? "unknown model", (models.get(g.name) ?? 0) + 1);
  const gpuAttrs = row.gpus.map((g) => attributesOf(g.entity));
  const distinct = (field) =>
    [...new Set(gpuAttrs.map((a) => a[field]).filter(Boolean))].join(", ") || null;
  const disks = row.disks.map((d) => {
    const a = attributesOf(d.entity);
    const what = [a.device, a.fstype].filter(Boolean).join(", ");
    return `${d.mountpoint}: ${formatBytes(d.total_bytes)}${what ? ` (${what})` : ""}`;
  });
  const addresses = Object.entries(f.addresses ?? {})
    .filter(([, found]) => found?.length)
    .map(([nic, found]) => `${nic}: ${found.join(", ")}`);
  const kernel = f.os_release && !String(row.os ?? "").includes(f.os_release) ? f.os_release : null;
  const facts = [
    ["os", "Operating system", row.os],
    ["kernel", "Kernel", kernel],
    ["arch", "Architecture", f.architecture],
    ["cpu", "CPU", f.cpu_model],
    ["cores", "Cores", cores],
    [
      "memory",
      "Memory",
      isMissing(row.memory_total_bytes) ? null : formatBytes(row.memory_total_bytes),
    ],
    ["swap", "Swap", isMissing(f.swap_total_bytes) ? null : formatBytes(f.swap_total_bytes)],
    ["booted", "Booted", Number.isFinite(f.boot_time_ms) ? formatDateTime(f.boot_time_ms) : null],
    ["addresses", "Addresses", list(addresses)],
    ["disks", "Disks", list(disks)],
    ["gpus", "GPUs", list([...models].map(([model, n]) => `${n} × ${model}`))],
    ["driver", "GPU driver", distinct("driver_version")],
    ["cuda", "CUDA", distinct("cuda_version")],
  ].filter(([, , shown]) => shown);
  const dl = document.getElementById("facts");
  if (!facts.length) {
    dl.replaceChildren(
      el("div", "placeholder", "No facts yet: the host has not sent its inventory."),
    );
    return;
  }
  dl.replaceChildren(
    ...facts.map(([id, label, shown]) => {
      const div = el("div", "fact");
      div.dataset.fact = id;
      const dd = el("dd");
      dd.append(shown);
      div.append(el("dt", "", label), dd);
      return div;
    }),
  );
  const memory = isMissing(row.memory_total_bytes)
    ? null
    : `${formatBytes(row.memory_total_bytes)} memory`;
  document.getElementById("host-summary").textContent = [row.os, f.cpu_model, cores, memory]
    .filter(Boolean)
    .join(" · ");
}

// ---- readings now -----------------------------------------------------------------------------

const memoryUsed = () => value(entity, "memory_used_bytes");
const memoryRatio = () => {
  const used = memoryUsed();
  const total = row.memory_total_bytes;
  return !isMissing(used) && total > 0 ? used / total : value(entity, "memory_utilization_ratio");
};
// The GPUs' mean utilisation (null: none has said).
const gpuUtil = () => {
  const known = row.gpus.map((g) => value(g.entity, "gpu_utilization_ratio"));
  const total = sum(known);
  return total === null ? null : total / known.filter((v) => !isMissing(v)).length;
};

// [id, label, text(), ratio() for a meter, detail()]
const KPIS = [
  [
    "cpu",
    "CPU",
    () => formatPercent(value(entity, "cpu_utilization_ratio")),
    () => value(entity, "cpu_utilization_ratio"),
  ],
  [
    "load",
    "Load (1 min)",
    () => formatValue("load_average_1m", value(entity, "load_average_1m")),
    null,
    () =>
      ["5", "15"]
        .map(
          (w) => `${w} min ${formatValue("load_average_1m", value(entity, `load_average_${w}m`))}`,
        )
        .join(" · "),
  ],
  ["frequency", "CPU frequency", () => formatHertz(value(entity, "cpu_frequency_hertz"))],
  [
    "memory",
    "Memory",
    () => formatPercent(memoryRatio()),
    memoryRatio,
    () => formatBytesOf(memoryUsed(), row.memory_total_bytes),
  ],
  [
    "swap",
    "Swap in use",
    () => formatBytes(value(entity, "swap_used_bytes")),
    () => value(entity, "swap_utilization_ratio"),
  ],
  ["uptime", "Uptime", () => formatDuration(value(entity, "uptime_seconds"))],
  ["processes", "Processes", () => formatValue("process_count", value(entity, "process_count"))],
  [
    "sessions",
    "Users logged in",
    () => formatValue("user_session_count", value(entity, "user_session_count")),
  ],
  ["net-in", "Network in", () => formatRate(networkRate("network_receive_bytes_per_second"))],
  ["net-out", "Network out", () => formatRate(networkRate("network_transmit_bytes_per_second"))],
  [
    "gpus",
    "GPUs",
    () => String(row.gpus.length),
    null,
    () => (row.gpus.length ? `${formatPercent(gpuUtil())} busy on average` : ""),
  ],
];

function buildKpis() {
  document.getElementById("kpis").replaceChildren(
    ...KPIS.map(([id, label]) => {
      const box = el("div", "kpi");
      box.dataset.kpi = id;
      box.append(el("dt", "", label), el("dd", "kpi-value", "—"));
      return box;
    }),
  );
}

function drawKpis() {
  for (const [id, , text, ratio, detail] of KPIS) {
    const parts = [el("span", "kpi-text", text())];
    if (ratio) parts.push(meter(ratio()));
    if (detail) parts.push(el("span", "kpi-sub", detail()));
    document.querySelector(`#kpis [data-kpi="${id}"] dd`).replaceChildren(...parts);
  }
}

// The parts' tables: [id, title, column headings, rows() -> [[entity, cells], ...]]. A cell is
// text or a node; a table with no rows is hidden.
const withMeter = (ratio) => {
  const span = el("span", "with-meter");
  span.append(el("span", "", formatPercent(ratio)), meter(ratio));
  return span;
};
const PART_TABLES = [
  [
    "gpus",
    "GPUs",
    ["GPU", "Model", "Utilisation", "Memory", "Temperature", "Power", "Fan"],
    () =>
      row.gpus.map((g) => {
        const v = (m) => value(g.entity, m);
        const limit = v("gpu_power_limit_watts");
        const power = formatValue("gpu_power_watts", v("gpu_power_watts"));
        const used = v("gpu_memory_used_bytes") ?? g.memory_used_bytes;
        return [
          g.entity,
          [
            String(g.index),
            g.name ?? "—",
            withMeter(v("gpu_utilization_ratio")),
            `${formatBytesOf(used, g.memory_total_bytes)} (${formatPercent(used / g.memory_total_bytes)})`,
            formatValue("gpu_temperature_celsius", v("gpu_temperature_celsius")),
            isMissing(limit) ? power : `${power} of ${formatValue("gpu_power_limit_watts", limit)}`,
            formatPercent(v("gpu_fan_ratio")),
          ],
        ];
      }),
  ],
  [
    "disks",
    "Disks",
    ["Mounted at", "Device", "Size", "In use", "Free", "Read", "Write"],
    () =>
      row.disks.map((d) => {
        const a = attributesOf(d.entity);
        const v = (m) => value(d.entity, m);
        return [
          d.entity,
          [
            d.mountpoint,
            [a.device, a.fstype].filter(Boolean).join(" · ") || "—",
            formatBytes(d.total_bytes),
            withMeter(v("disk_utilization_ratio") ?? d.utilization_ratio),
            formatBytes(v("disk_free_bytes")),
            formatRate(v("disk_read_bytes_per_second")),
            formatRate(v("disk_write_bytes_per_second")),
          ],
        ];
      }),
  ],
  [
    "nics",
    "Network interfaces",
    ["Interface", "Addresses", "Link", "In", "Out"],
    () =>
      partsOf("nic").map((path) => {
        const a = attributesOf(path);
        const link = [
          a.is_up === false ? "down" : a.is_up ? "up" : null,
          Number.isFinite(a.speed_mbps) ? `${a.speed_mbps} Mbit/s` : null,
          a.mac,
        ];
        return [
          path,
          [
            a.interface ?? segment(path).replace(/^net-/, ""),
            (a.addresses ?? []).join(", ") || "—",
            link.filter(Boolean).join(" · ") || "—",
            formatRate(value(path, "network_receive_bytes_per_second")),
            formatRate(value(path, "network_transmit_bytes_per_second")),
          ],
        ];
      }),
  ],
  [
    "sensors",
    "Sensors and fans",
    ["Sensor", "Reading", "High", "Critical"],
    () => {
      const celsius = (x) => (isMissing(x) ? "—" : formatValue("temperature_celsius", x));
      const sensors = partsOf("sensor").map((path) => {
        const a = attributesOf(path);
        const reading = celsius(value(path, "temperature_celsius"));
        return [
          path,
          [sensorLabel(path), reading, celsius(a.high_celsius), celsius(a.critical_celsius)],
        ];
      });
      const fans = partsOf("fan").map((path) => [
        path,
        [sensorLabel(path), formatValue("fan_rpm", value(path, "fan_rpm")), "—", "—"],
      ]);
      return [...sensors, ...fans];
    },
  ],
];

function buildPartTables() {
  document.getElementById("parts").replaceChildren(
    ...PART_TABLES.map(([id, title, headings]) => {
      const panel = el("article", "panel");
      panel.id = `${id}-panel`;
      panel.hidden = true;
      const table = el("table", "history-table parts-table");
      table.id = id;
      const head = el("tr");
      for (const heading of headings) {
        const th = el("th", "", heading);
        th.scope = "col";
        head.append(th);
      }
      table.append(el("thead"), el("tbody"));
      table.tHead.append(head);
      const wrap = el("div", "table-wrap");
      wrap.append(table);
      panel.append(el("h2", "", title), wrap);
      return panel;
    }),
  );
}

function drawPartTables() {
  for (const [id, , , rowsOf] of PART_TABLES) {
    const rows = rowsOf().map(([path, cells]) => {
      const tr = el("tr");
      tr.dataset.entity = path;
      for (const cell of cells) {
        const td = el("td");
        td.append(cell ?? "—");
        tr.append(td);
      }
      return tr;
    });
    document.getElementById(`${id}-panel`).hidden = rows.length === 0;
    document.querySelector(`#${id} tbody`).replaceChildren(...rows);
  }
}

// ---- online, state, alerts --------------------------------------------------------------------

function drawState() {
  const state = row.state; // as GET /states: null without alerting
  const shown = state?.rollup_state ?? (row.online ? "OK" : "UNKNOWN");
  const page = document.getElementById("page");
  page.dataset.state = shown;
  page.dataset.online = String(row.online);

  const serverNow = row.nowMs + (Date.now() - rowAt);
  const seen = row.online
    ? row.last_seen_ms === null
      ? ""
      : `last sample ${formatTime(row.last_seen_ms)}`
    : lastSeenText(row.last_seen_ms, serverNow);
  document
    .getElementById("host-online")
    .replaceChildren(onlinePill(row.online), el("span", "last-seen", seen));

  const chip = stateChip(shown, null, "big");
  const hero = document.getElementById("hero-state");
  hero.dataset.state = shown;
  const parts = [chip];
  if (state?.rollup_from) {
    chip.title = `${shown} because of ${state.rollup_from}; the host itself is ${state.state}`;
    parts.push(el("span", "rollup-from", `from ${state.rollup_from.slice(entity.length + 1)}`));
  }
  hero.replaceChildren(...parts);

  const counts = state?.alerts ?? { critical: 0, warning: 0 };
  document.getElementById("hero-alerts").replaceChildren(
    ...["critical", "warning"].map((level) => {
      const badge = el("span", `alert-count-badge lvl-${level}`, `${counts[level]} ${level}`);
      badge.dataset.level = level;
      badge.dataset.count = String(counts[level]);
      return badge;
    }),
  );
  const reason = document.getElementById("state-reason");
  const since = state?.since_ms ? `since ${formatTime(state.since_ms)}` : "";
  const self = state && state.state !== shown ? `The host itself: ${state.state}` : "";
  reason.textContent = [self, since, state?.reason].filter(Boolean).join(" · ");
  reason.hidden = !reason.textContent;
}

const queueDraw = frameQueue(() => {
  drawState();
  drawKpis();
  drawPartTables();
  setClock(newest);
});

// This host's row of GET /hosts (null: there is no such host).
async function loadRow() {
  const answer = await getJSON("/hosts", { entity });
  const found = answer.hosts.find((h) => h.entity === entity) ?? null;
  if (found) {
    row = { ...found, nowMs: answer.now_ms };
    rowAt = Date.now();
    newest = Math.max(newest, row.last_seen_ms ?? 0);
  }
  return found;
}

async function refreshRow() {
  try {
    await loadRow();
    queueDraw();
  } catch (error) {
    console.warn("host:", error.message);
  }
}

async function loadInventory() {
  const { entities } = await getJSON("/inventory");
  inventory = new Map(
    entities
      .filter((e) => e.path === entity || e.path.startsWith(`${entity}/`))
      .map((e) => [e.path, { kind: e.kind, attributes: e.attributes ?? {} }]),
  );
}

async function loadLive() {
  const live = await getJSON("/live", { entity: `${entity}/**` });
  for (const [e, metrics] of Object.entries(live.entities ?? {})) {
    for (const [m, r] of Object.entries(metrics)) latest.set(key(e, m), r.value);
  }
}

// ---- charts -----------------------------------------------------------------------------------

// [id, title, metric (the unit of the axis), series [[entity, metric, label]], options]
function chartSpecs() {
  const cores = partsOf("cpu");
  const nics = partsOf("nic");
  const sensors = partsOf("sensor");
  const percent = { yRange: [0, 100] };
  const perGpu = (metric) => row.gpus.map((g) => [g.entity, metric, `GPU ${g.index}`]);
  const name = (path) => attributesOf(path).interface ?? segment(path).replace(/^net-/, "");
  return [
    [
      "cpu",
      "CPU utilisation",
      "cpu_utilization_ratio",
      [[entity, "cpu_utilization_ratio", "All cores"]],
      percent,
    ],
    [
      "cores",
      "CPU utilisation per core",
      "cpu_utilization_ratio",
      cores.map((c) => [c, "cpu_utilization_ratio", segment(c)]),
      percent,
    ],
    [
      "memory",
      "Memory and swap in use",
      "memory_used_bytes",
      [
        [entity, "memory_used_bytes", "Memory"],
        [entity, "swap_used_bytes", "Swap"],
      ],
    ],
    [
      "load",
      "Load average",
      "load_average_1m",
      ["1m", "5m", "15m"].map((w) => [entity, `load_average_${w}`, w.replace("m", " min")]),
    ],
    [
      "frequency",
      "CPU frequency",
      "cpu_frequency_hertz",
      [[entity, "cpu_frequency_hertz", "Frequency"]],
    ],
    [
      "disk-usage",
      "Disk space in use",
      "disk_utilization_ratio",
      row.disks.map((d) => [d.entity, "disk_utilization_ratio", d.mountpoint]),
      percent,
    ],
    [
      "disk-io",
      "Disk I/O",
      "disk_read_bytes_per_second",
      row.disks.flatMap((d) => [
        [d.entity, "disk_read_bytes_per_second", `${d.mountpoint} read`],
        [d.entity, "disk_write_bytes_per_second", `${d.mountpoint} write`],
      ]),
    ],
    [
      "network",
      "Network",
      "network_receive_bytes_per_second",
      nics.flatMap((n) => [
        [n, "network_receive_bytes_per_second", `${name(n)} in`],
        [n, "network_transmit_bytes_per_second", `${name(n)} out`],
      ]),
    ],
    [
      "temperatures",
      "Temperatures",
      "temperature_celsius",
      sensors.map((s) => [s, "temperature_celsius", sensorLabel(s)]),
    ],
    ["fans", "Fan speed", "fan_rpm", partsOf("fan").map((f) => [f, "fan_rpm", sensorLabel(f)])],
    [
      "gpu-util",
      "GPU utilisation",
      "gpu_utilization_ratio",
      perGpu("gpu_utilization_ratio"),
      percent,
    ],
    ["gpu-memory", "GPU memory in use", "gpu_memory_used_bytes", perGpu("gpu_memory_used_bytes")],
    [
      "gpu-temperature",
      "GPU temperature",
      "gpu_temperature_celsius",
      perGpu("gpu_temperature_celsius"),
    ],
    ["gpu-power", "GPU power", "gpu_power_watts", perGpu("gpu_power_watts")],
  ];
}

// Charts of what this host sends (a VM has no fans, a laptop no GPU): series it has a value of.
function buildCharts() {
  const section = document.getElementById("charts");
  for (const [id, title, metric, all, options = {}] of chartSpecs()) {
    const series = all.filter(([e, m]) => latest.has(key(e, m)));
    if (!series.length) continue;
    const card = el("article", "panel chart-card");
    const container = el("div", "chart");
    container.id = `chart-${id}`;
    container.dataset.chart = id;
    container.dataset.series = String(series.length);
    card.append(el("h2", "", title), container);
    section.append(card);
    charts.add(container, { metric, series, ...options });
  }
}

function onData({ tsMs, data }) {
  let mine = false;
  for (const [e, metrics] of Object.entries(data)) {
    if (e !== entity && !e.startsWith(`${entity}/`)) continue;
    mine = true;
    for (const [m, v] of Object.entries(metrics)) latest.set(key(e, m), v);
  }
  if (!mine) return;
  newest = Math.max(newest, tsMs ?? 0);
  queueDraw();
  charts.push(tsMs, data);
}

async function loadEvents() {
  try {
    const { events } = await getJSON("/events", { entity: `${entity}/**`, limit: 100 });
    feed.render(events, []);
  } catch (error) {
    console.warn("events:", error.message);
  }
}

async function main() {
  if (!entity || !/^host\/[^/]+$/.test(entity)) {
    fail("No host chosen: open this page from the hosts (host.html?entity=host/<name>).");
    return;
  }
  try {
    const [found] = await Promise.all([loadRow(), loadInventory(), loadLive()]);
    if (!found) {
      fail(`There is no host "${entity}": neither in the inventory nor in the telemetry.`);
      return;
    }
  } catch (error) {
    fail(`Could not load this host: ${error.message}`);
    return;
  }
  mountTokenBox(document.querySelector(".topbar-meta"));
  buildHeader();
  drawFacts();
  buildKpis();
  buildPartTables();
  queueDraw();

  alertsPanel = new AlertsPanel({
    list: document.getElementById("alerts"),
    count: document.getElementById("alerts-count"),
    within: entity,
    nowMs,
    serverOf: () => null,
    onChange: refreshRow,
  });
  // The markers of this host and its parts (the room's faults are the twin's, not this one's).
  charts = new PageCharts({
    entity,
    rangeBar: document.getElementById("range-bar"),
    section: document.getElementById("charts"),
    nowMs,
    keepMarker: (m) => m.entity === entity || m.entity.startsWith(`${entity}/`),
  });
  feed = new EventFeed(document.getElementById("events"), {
    toggleHost: document.getElementById("events-tools"),
    empty: "No events for this host.",
    max: 20,
  });
  buildCharts();

  startStream(
    { entity: `${entity}/**` },
    {
      data: onData,
      alerts: (alerts) => {
        alertsPanel.ingest(alerts);
        loadEvents();
      },
      reconnected: () => {
        loadLive()
          .then(queueDraw)
          .catch((error) => console.warn("live:", error.message));
        charts.reload();
      },
    },
  );

  const incidents = new IncidentsPanel({
    list: document.getElementById("incidents"),
    count: document.getElementById("incidents-count"),
    params: { entity, open: true },
    empty: "No open incident on this host.",
  });
  // Filled before the charts are drawn, so that its cards do not move them afterwards.
  await incidents.refresh();
  await charts.reload();
  loadEvents();
  setInterval(loadEvents, EVENTS_REFRESH_MS);
  setInterval(refreshRow, HOST_REFRESH_MS);
  // An agent sends its facts again when they change.
  setInterval(async () => {
    try {
      await loadInventory();
      drawFacts();
    } catch (error) {
      console.warn("inventory:", error.message);
    }
  }, INVENTORY_REFRESH_MS);
  setInterval(queueDraw, 1_000); // "last seen … ago" follows the clock
  setInterval(() => charts.slide(), 5_000);
  alertsPanel.start();
  setInterval(() => alertsPanel.tick(), 1_000);
  setInterval(() => incidents.refresh(), INCIDENTS_REFRESH_MS);
}

main();
