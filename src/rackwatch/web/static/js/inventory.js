// The room's own devices (inventory.html): each PDU with its outlets (which machine is plugged
// into which outlet, the outlet's state, watts and amps), the declared machines, and where
// what agents and PDUs report disagrees with the declaration (docs/INVENTORY.md).
//
// GET /inventory once a minute (it changes when the inventory is synced or a source reports),
// and at once when a reading names an outlet it does not list yet (a PDU polled for the first
// time); GET /live for the outlets' and PDUs' readings every 5 s.

import { AuthError, getJSON } from "./api.js";
import { mountTokenBox } from "./control.js";
import { formatBytes, formatWatts, isMissing } from "./format.js";
import { el, setClock } from "./ui.js";

const LIVE_MS = 5_000;
const INVENTORY_MS = 60_000;
const DASH = "—";
const MACHINE_KINDS = new Set(["machine", "server", "host", "gpu-server", "storage", "switch"]);
const amps = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 2 });

let inventory = null;
let disagreements = [];
let live = {};
let lastError = "";

const declared = (e) => Array.isArray(e.attributes.declared);

// The page that shows a machine: a host's own page, else the server page.
function machineLink(path) {
  const link = el("a", "host-link", path);
  link.href = path.startsWith("host/") ? `host.html?entity=${path}` : `server.html?entity=${path}`;
  return link;
}

function outletNumber(outlet) {
  const given = outlet.attributes.number;
  if (Number.isInteger(given)) return given;
  const found = /(\d+)$/.exec(outlet.path);
  return found ? Number(found[1]) : null;
}

function reading(entity, metric) {
  const value = live[entity]?.[metric]?.value;
  return isMissing(value) ? null : value;
}

function stateText(on) {
  if (on === null) return DASH;
  return on >= 0.5 ? "on" : "off";
}

function pdusOf(entities) {
  const pdus = entities.filter((e) => e.kind === "pdu");
  const outlets = entities.filter((e) => e.kind === "outlet");
  return pdus.map((pdu) => ({
    pdu,
    outlets: outlets
      .filter((o) => (o.attributes.pdu ?? o.parent) === pdu.path)
      .sort((a, b) => (outletNumber(a) ?? 0) - (outletNumber(b) ?? 0)),
  }));
}

function pduPanel({ pdu, outlets }) {
  const box = el("div", "pdu-block");
  box.dataset.entity = pdu.path;
  const total = reading(pdu.path, "pdu_power_watts");
  const where = [pdu.attributes.host, pdu.attributes.model].filter(Boolean).join(" · ");
  const head = el("h3", "pdu-name", pdu.path);
  const sub = el(
    "p",
    "hint",
    `${where || "no address declared"} · ${outlets.length} outlet(s) known · total ${
      total === null ? DASH : formatWatts(total)
    }`,
  );
  const table = el("table", "history-table outlets-table");
  const headRow = el("tr");
  for (const label of ["Outlet", "Name", "Machine", "State", "Power", "Current"]) {
    const th = el("th", "", label);
    th.scope = "col";
    headRow.append(th);
  }
  const thead = el("thead");
  thead.append(headRow);
  const tbody = el("tbody");
  for (const outlet of outlets) {
    const tr = el("tr", "outlet-row");
    tr.dataset.entity = outlet.path;
    const machine = outlet.attributes.machine;
    const watts = reading(outlet.path, "outlet_power_watts");
    const current = reading(outlet.path, "outlet_current_amperes");
    const on = reading(outlet.path, "outlet_on");
    const cells = [
      el("td", "", String(outletNumber(outlet) ?? DASH)),
      el("td", "", outlet.attributes.name ?? DASH),
      el("td"),
      el("td", "", stateText(on)),
      el("td", "", watts === null ? DASH : formatWatts(watts)),
      el("td", "", current === null ? DASH : `${amps.format(current)} A`),
    ];
    cells[2].append(machine ? machineLink(machine) : DASH);
    cells.forEach((td, i) => {
      td.dataset.col = ["number", "name", "machine", "state", "watts", "amps"][i];
    });
    tr.dataset.on = on === null ? "" : String(on >= 0.5);
    tr.append(...cells);
    tbody.append(tr);
  }
  table.append(thead, tbody);
  const wrap = el("div", "table-wrap");
  wrap.append(table);
  box.append(head, sub, wrap);
  return box;
}

function machineRow(m) {
  const a = m.attributes;
  const tr = el("tr", "machine-row");
  tr.dataset.entity = m.path;
  const gpus = [a.gpu_count, (a.gpu_models ?? []).join(", "), a.cuda_version && `CUDA ${a.cuda_version}`]
    .filter((x) => x !== undefined && x !== null && x !== "")
    .join(" · ");
  const memory = isMissing(a.memory_gib) ? DASH : formatBytes(a.memory_gib * 1024 ** 3);
  const first = el("td");
  first.append(machineLink(m.path));
  tr.append(
    first,
    el("td", "", m.kind),
    el("td", "", [a.rack, a.slot].filter((x) => x !== undefined).join(" · ") || DASH),
    el("td", "", (a.outlets ?? []).join(", ") || DASH),
    el("td", "", gpus || DASH),
    el("td", "", memory),
    el("td", "", a.owner ?? DASH),
  );
  return tr;
}

function emptyRow(columns, text) {
  const tr = el("tr");
  const td = el("td", "empty", text);
  td.colSpan = columns;
  tr.append(td);
  return tr;
}

function draw() {
  const summary = document.getElementById("inventory-summary");
  summary.classList.toggle("error", Boolean(lastError));
  if (!inventory) {
    summary.textContent = lastError || "Loading…";
    return;
  }
  const entities = inventory.entities;
  const groups = pdusOf(entities);
  const machines = entities.filter((e) => MACHINE_KINDS.has(e.kind) && declared(e));
  const nOutlets = groups.reduce((n, g) => n + g.outlets.length, 0);
  const text = `${groups.length} PDU(s), ${nOutlets} outlet(s), ${machines.length} declared machine(s), ${disagreements.length} disagreement(s)`;
  summary.textContent = lastError ? `${lastError} (showing the last answer)` : text;
  summary.dataset.pdus = String(groups.length);
  const pdus = document.getElementById("pdus");
  pdus.replaceChildren(
    ...(groups.length
      ? groups.map(pduPanel)
      : [el("p", "hint", "No PDU yet: declare one in the inventory, or poll one over SNMP ([[pdus]], docs/SNMP.md).")]),
  );
  const rows = document.getElementById("machines-rows");
  rows.replaceChildren(
    ...(machines.length ? machines.map(machineRow) : [emptyRow(7, "No machine is declared (docs/INVENTORY.md).")]),
  );
  const issues = document.getElementById("disagreement-rows");
  issues.replaceChildren(
    ...(disagreements.length
      ? disagreements.map((d) => {
          const tr = el("tr", "disagreement-row");
          tr.dataset.entity = d.path;
          tr.append(
            el("td", "", d.path),
            el("td", "", d.field),
            el("td", "", JSON.stringify(d.declared)),
            el("td", "", JSON.stringify(d.discovered)),
          );
          return tr;
        })
      : [emptyRow(4, "None: what sources report agrees with the declaration.")]),
  );
}

function explain(error, what) {
  return error instanceof AuthError
    ? "This server wants a token for reads: paste one in the token box (top right)."
    : `Could not load ${what}: ${error.detail || error.message}`;
}

async function loadInventory() {
  try {
    const answer = await getJSON("/inventory");
    inventory = answer;
    disagreements = answer.disagreements ?? [];
    lastError = "";
  } catch (error) {
    lastError = explain(error, "the inventory");
  }
  draw();
}

async function loadLive() {
  if (!inventory) return;
  try {
    // A glob: a server with no SNMP PDU may not know the outlet metrics at all.
    const answer = await getJSON("/live", { metric: ["outlet_*", "pdu_power_watts"] });
    live = answer.entities ?? {};
    const listed = new Set(inventory.entities.map((e) => e.path));
    const unlisted = Object.keys(live).some((entity) => !listed.has(entity) && /outlet/.test(entity));
    if (unlisted) await loadInventory();
    const newest = Math.max(
      0,
      ...Object.values(live).flatMap((metrics) => Object.values(metrics).map((r) => r.ts_ms ?? 0)),
    );
    if (newest) setClock(newest);
  } catch (error) {
    lastError = explain(error, "the outlets' readings");
  }
  draw();
}

async function main() {
  mountTokenBox(document.querySelector(".topbar-meta"));
  await loadInventory();
  await loadLive();
  setInterval(loadInventory, INVENTORY_MS);
  setInterval(loadLive, LIVE_MS);
}

main();
