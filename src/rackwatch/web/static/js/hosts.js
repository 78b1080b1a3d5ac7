// The fleet of real machines (hosts.html): one row per host `host/<name>` (docs/METRICS.md), in
// the shape users of GPU servers asked for (seed 004): online or offline (with when it was last
// heard), uptime, CPU, memory used/total, the fullest disk, network in/out, the GPUs and each
// GPU's utilisation and memory used/total. Sorted by any column, filtered by a box; both kept
// in the URL, so a view can be shared.
//
// One GET /hosts, read again every few seconds (hosts report every 5 s): the server says
// whether a host is online (`[host] offline_after_seconds`, docs/AGENT.md), so a host that goes
// silent turns offline here without this page guessing.

import { AuthError, getJSON } from "./api.js";
import { stateChip } from "./alerts.js";
import { mountTokenBox } from "./control.js";
import { formatBytesOf, formatDuration, formatPercent, formatRate, isMissing } from "./format.js";
import { el, lastSeenText, meter, onlinePill, setClock } from "./ui.js";

const REFRESH_MS = 5_000;
const DASH = "—";
const two = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
// States worth a chip beside "online" (OK says nothing more; UNKNOWN is "offline" already).
const NOTABLE = ["WARNING", "CRITICAL", "FAILED", "MAINTENANCE"];

// The fullest disk: the one to look at first.
const fullest = (h) =>
  h.disks.reduce(
    (best, d) =>
      !isMissing(d.utilization_ratio) && (!best || d.utilization_ratio > best.utilization_ratio)
        ? d
        : best,
    null,
  );

const meanGpuUtil = (h) => {
  const known = h.gpus.map((g) => g.utilization_ratio).filter((v) => !isMissing(v));
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
};

const cellMain = (text) => el("span", "cell-main", text);
const cellSub = (text) => el("span", "cell-sub", text);

// A percentage over its meter over a line of detail.
function percentCell(td, ratio, detail, label) {
  td.replaceChildren(cellMain(formatPercent(ratio)), meter(ratio, label), cellSub(detail));
}

// Each column: its heading, how its cell is drawn, and its sort key (null: no value, always
// last). `text` columns sort A to Z first, the others largest first (the busiest, the fullest).
const COLUMNS = [
  {
    key: "name",
    label: "Host",
    text: true,
    sortKey: (h) => h.name,
    cell: (td, h) => {
      const link = el("a", "host-link", h.name);
      link.href = `host.html?entity=${h.entity}`;
      td.replaceChildren(link, cellSub([h.addresses[0], h.os].filter(Boolean).join(" · ")));
    },
  },
  {
    key: "status",
    label: "Status",
    sortKey: (h) => (h.online ? 1 : 0),
    cell: (td, h, nowMs) => {
      const parts = [onlinePill(h.online)];
      const shown = h.state?.rollup_state;
      if (NOTABLE.includes(shown)) parts.push(stateChip(shown));
      if (!h.online) parts.push(cellSub(lastSeenText(h.last_seen_ms, nowMs)));
      td.replaceChildren(...parts);
      td.title = h.state?.reason ?? "";
    },
  },
  {
    key: "uptime",
    label: "Uptime",
    sortKey: (h) => h.uptime_seconds,
    cell: (td, h) => td.replaceChildren(cellMain(formatDuration(h.uptime_seconds))),
  },
  {
    key: "cpu",
    label: "CPU",
    sortKey: (h) => h.cpu_utilization_ratio,
    cell: (td, h) => {
      const load = isMissing(h.load_average_1m) ? "" : `load ${two.format(h.load_average_1m)}`;
      percentCell(td, h.cpu_utilization_ratio, load, "CPU busy");
    },
  },
  {
    key: "memory",
    label: "Memory",
    sortKey: (h) => h.memory_utilization_ratio,
    cell: (td, h) => {
      const of = formatBytesOf(h.memory_used_bytes, h.memory_total_bytes);
      percentCell(td, h.memory_utilization_ratio, of, "memory in use");
    },
  },
  {
    key: "disk",
    label: "Fullest disk",
    sortKey: (h) => fullest(h)?.utilization_ratio,
    cell: (td, h) => {
      const d = fullest(h);
      if (!d) {
        td.replaceChildren(cellMain(DASH));
        return;
      }
      const of = formatBytesOf(d.used_bytes, d.total_bytes);
      percentCell(td, d.utilization_ratio, `${of} on ${d.mountpoint}`, "disk space in use");
    },
  },
  {
    key: "network",
    label: "Network in / out",
    sortKey: (h) =>
      isMissing(h.network_receive_bytes_per_second) &&
      isMissing(h.network_transmit_bytes_per_second)
        ? null
        : (h.network_receive_bytes_per_second ?? 0) + (h.network_transmit_bytes_per_second ?? 0),
    cell: (td, h) => {
      const rx = el("span", "net-in", `↓ ${formatRate(h.network_receive_bytes_per_second)}`);
      rx.title = "Received, all interfaces";
      const tx = el("span", "net-out", `↑ ${formatRate(h.network_transmit_bytes_per_second)}`);
      tx.title = "Sent, all interfaces";
      td.replaceChildren(rx, tx);
    },
  },
  {
    key: "gpus",
    label: "GPUs",
    sortKey: (h) => h.gpus.length,
    cell: (td, h) => {
      const n = cellMain(String(h.gpus.length));
      n.classList.add("gpu-count");
      const models = [...new Set(h.gpus.map((g) => g.name).filter(Boolean))];
      td.replaceChildren(n, cellSub(models.join(", ")));
    },
  },
  {
    key: "gpu",
    label: "Each GPU: utilisation, memory",
    sortKey: meanGpuUtil,
    cell: (td, h) => {
      if (!h.gpus.length) {
        td.replaceChildren(cellSub(DASH));
        return;
      }
      const list = el("ul", "gpu-list");
      for (const g of h.gpus) {
        const li = el("li", "gpu-mini");
        li.dataset.gpu = String(g.index);
        li.title = `GPU ${g.index}${g.name ? `: ${g.name}` : ""}`;
        li.append(
          el("span", "gpu-idx", String(g.index)),
          el("span", "gpu-util", formatPercent(g.utilization_ratio)),
          el("span", "gpu-mem", formatBytesOf(g.memory_used_bytes, g.memory_total_bytes)),
          meter(g.memory_utilization_ratio, "GPU memory in use"),
        );
        list.append(li);
      }
      td.replaceChildren(list);
    },
  },
];

let answer = null; // the last GET /hosts, and when it came (this browser's clock)
let receivedAt = 0;
let lastError = "";
let sortKey = "name";
let sortDir = "asc";
let filterText = "";
const rows = new Map(); // host path -> <tr>

const columnOf = (k) => COLUMNS.find((c) => c.key === k);

function readUrl() {
  const params = new URLSearchParams(location.search);
  if (columnOf(params.get("sort"))) sortKey = params.get("sort");
  const dir = params.get("dir");
  sortDir = ["asc", "desc"].includes(dir) ? dir : columnOf(sortKey).text ? "asc" : "desc";
  filterText = params.get("q") ?? "";
  document.getElementById("hosts-filter").value = filterText;
}

function writeUrl() {
  const url = new URL(location.href);
  url.searchParams.set("sort", sortKey);
  url.searchParams.set("dir", sortDir);
  if (filterText) url.searchParams.set("q", filterText);
  else url.searchParams.delete("q");
  history.replaceState(history.state, "", url);
}

function buildHead() {
  document.getElementById("hosts-head").replaceChildren(
    ...COLUMNS.map((column) => {
      const th = el("th");
      th.scope = "col";
      th.dataset.col = column.key;
      const button = el("button", "sort-btn", column.label);
      button.type = "button";
      button.dataset.sort = column.key;
      button.append(el("span", "sort-mark"));
      button.addEventListener("click", () => {
        if (sortKey === column.key) sortDir = sortDir === "asc" ? "desc" : "asc";
        else [sortKey, sortDir] = [column.key, column.text ? "asc" : "desc"];
        writeUrl();
        draw();
      });
      th.append(button);
      return th;
    }),
  );
}

function showSortMarks() {
  for (const th of document.querySelectorAll("#hosts-head th")) {
    const on = th.dataset.col === sortKey;
    if (on) th.setAttribute("aria-sort", sortDir === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
    th.querySelector(".sort-mark").textContent = on ? (sortDir === "asc" ? " ▲" : " ▼") : "";
  }
}

// Every word of the filter appears in the host's name, addresses, OS or GPU models.
function matches(h, words) {
  const haystack = [h.name, h.os, ...h.addresses, ...h.gpus.map((g) => g.name)]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return words.every((w) => haystack.includes(w));
}

function compare(a, b) {
  const column = columnOf(sortKey);
  const [x, y] = [column.sortKey(a), column.sortKey(b)];
  if (isMissing(x) !== isMissing(y)) return isMissing(x) ? 1 : -1; // no value: last either way
  let order = 0;
  if (!isMissing(x)) {
    order = column.text ? String(x).localeCompare(String(y), "en", { numeric: true }) : x - y;
  }
  if (sortDir === "desc") order = -order;
  return order || a.name.localeCompare(b.name, "en", { numeric: true });
}

function rowFor(h) {
  let tr = rows.get(h.entity);
  if (!tr) {
    tr = el("tr", "host-row");
    tr.dataset.entity = h.entity;
    for (const column of COLUMNS) {
      const td = el("td");
      td.dataset.col = column.key;
      td.dataset.label = column.label; // shown above the value where rows become cards
      tr.append(td);
    }
    rows.set(h.entity, tr);
  }
  return tr;
}

function emptyRow(...content) {
  const tr = el("tr", "placeholder-row");
  const td = el("td", "placeholder hosts-empty");
  td.colSpan = COLUMNS.length;
  td.append(...content);
  tr.append(td);
  return tr;
}

function summaryText(all, shown, words) {
  const online = all.filter((h) => h.online).length;
  const gpus = all.reduce((n, h) => n + h.gpus.length, 0);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const filtered = words.length ? ` · ${shown.length} match the filter` : "";
  return (
    `${plural(all.length, "host")}: ${online} online, ${all.length - online} offline · ` +
    `${plural(gpus, "GPU")} · offline after ${answer.offline_after_s} s without telemetry` +
    filtered
  );
}

function draw() {
  showSortMarks();
  const summary = document.getElementById("hosts-summary");
  summary.classList.toggle("error", Boolean(lastError));
  if (!answer) {
    summary.textContent = lastError || "Loading…";
    return;
  }
  // The server's clock, moved on by the time since its answer: "last seen … ago" ticks.
  const nowMs = answer.now_ms + (Date.now() - receivedAt);
  const all = answer.hosts;
  const words = filterText.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = all.filter((h) => matches(h, words)).sort(compare);
  const text = summaryText(all, shown, words);
  summary.textContent = lastError ? `${lastError} (showing the last answer)` : text;
  summary.dataset.hosts = String(all.length);
  summary.dataset.online = String(all.filter((h) => h.online).length);
  const body = document.getElementById("hosts-rows");
  if (!all.length) {
    const code = (text) => el("code", "", text);
    const hint = [
      "No host yet: ",
      code("rackwatch run"),
      " watches the machine it runs on, ",
      code("rackwatch agent --server …"),
      " adds others.",
    ];
    body.replaceChildren(emptyRow(...hint));
    return;
  }
  if (!shown.length) {
    body.replaceChildren(emptyRow(`No host matches “${filterText}”.`));
    return;
  }
  const ordered = shown.map((h) => {
    const tr = rowFor(h);
    tr.dataset.online = String(h.online);
    tr.dataset.state = h.state?.rollup_state ?? "";
    COLUMNS.forEach((column, i) => column.cell(tr.children[i], h, nowMs));
    return tr;
  });
  // Rows move only when the order changed, so a row under the pointer stays put otherwise.
  const current = [...body.children];
  if (current.length !== ordered.length || current.some((tr, i) => tr !== ordered[i])) {
    body.replaceChildren(...ordered);
  }
}

async function refresh() {
  try {
    answer = await getJSON("/hosts");
    receivedAt = Date.now();
    lastError = "";
    const newest = Math.max(0, ...answer.hosts.map((h) => h.last_seen_ms ?? 0));
    setClock(newest);
  } catch (error) {
    lastError =
      error instanceof AuthError
        ? "This server wants a token for reads: paste one in the token box (top right)."
        : `Could not load the hosts: ${error.detail || error.message}`;
  }
  draw();
}

function main() {
  mountTokenBox(document.querySelector(".topbar-meta"));
  readUrl();
  buildHead();
  writeUrl();
  const input = document.getElementById("hosts-filter");
  input.addEventListener("input", () => {
    filterText = input.value.trim();
    writeUrl();
    draw();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(draw, 1_000); // "last seen 3 min ago" moves on by itself
}

main();
