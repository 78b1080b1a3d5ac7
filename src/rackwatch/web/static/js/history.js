// Alert history (alerts.html): past and present alerts from GET /api/v1/alerts/history,
// filtered by time range, entity, rule, level and status, a page at a time, newest first.
// Every filter and the page are in the URL, so a view can be shared.

import { AuthError, getJSON } from "./api.js";
import { mountTokenBox } from "./control.js";
import { formatDateTime, formatDuration, formatTime, formatValue } from "./format.js";
import { RangePicker, presetOf, rangeFromUrl } from "./timerange.js";
import { setClock } from "./ui.js";

const LIMITS = [25, 50, 100, 200];
const MAX_LIMIT = 500;
const FILTERS = ["entity", "rule", "level", "status"];

const form = document.getElementById("history-filters");
const field = (name) => document.getElementById(`f-${name}`);
let picker = null;
let offset = 0;
let limit = 50;
let newest = null;
let token = 0;
const rules = new Set();

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The filters from the URL into the form.
function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const name of FILTERS) field(name).value = params.get(name) ?? "";
  const asked = Number(params.get("limit"));
  limit = Number.isInteger(asked) && asked >= 1 && asked <= MAX_LIMIT ? asked : 50;
  const select = field("limit");
  if (!LIMITS.includes(limit)) select.append(new Option(String(limit), String(limit)));
  select.value = String(limit);
  const from = Number(params.get("offset"));
  offset = Number.isInteger(from) && from >= 0 ? from : 0;
}

// The form and the page into the URL (the range is written by the picker).
function writeUrl() {
  const url = new URL(location.href);
  for (const name of FILTERS) {
    const value = field(name).value.trim();
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
  }
  url.searchParams.set("limit", String(limit));
  if (offset) url.searchParams.set("offset", String(offset));
  else url.searchParams.delete("offset");
  history.replaceState(history.state, "", url);
}

// The query: a preset is sent as a duration before the server's now (the data's clock).
function query() {
  const range = picker.range;
  const preset = presetOf(range);
  const params = preset
    ? { from: `-${preset.key}`, to: "now" }
    : { from: Math.floor(range.from), to: Math.ceil(range.to) };
  for (const name of FILTERS) {
    const value = field(name).value.trim();
    if (value) params[name] = value;
  }
  return { ...params, limit, offset };
}

function statusText(a) {
  const status = String(a.status ?? a.state ?? "").toLowerCase();
  if (status === "resolved" && Number.isFinite(a.resolved_ts_ms)) {
    const lasted = Number.isFinite(a.fired_ts_ms)
      ? ` after ${formatDuration((a.resolved_ts_ms - a.fired_ts_ms) / 1000)}`
      : "";
    return `resolved ${formatTime(a.resolved_ts_ms)}${lasted}`;
  }
  if (status === "acknowledged") {
    return `acknowledged${a.acknowledged_by ? ` by ${a.acknowledged_by}` : ""}`;
  }
  return status || "—";
}

function serverLink(entity) {
  // A server is cluster/rack/server; its fans sit one level below.
  const parts = entity.split("/");
  return parts.length >= 3 && /^c\d+$/.test(parts[0]) ? parts.slice(0, 3).join("/") : null;
}

function row(a) {
  const tr = el("tr", `alert-row lvl-${String(a.level).toLowerCase()}`);
  tr.dataset.alertId = a.id;
  tr.dataset.level = String(a.level).toLowerCase();
  tr.dataset.status = String(a.status ?? "").toLowerCase();
  tr.dataset.entity = a.entity;
  tr.dataset.rule = a.rule ?? "";
  const fired = a.fired_ts_ms ?? a.ts_ms;
  const time = el("time", "", formatDateTime(fired));
  if (Number.isFinite(fired)) time.dateTime = new Date(fired).toISOString();
  const server = serverLink(a.entity);
  const entity = el(server ? "a" : "span", "alert-entity", a.entity);
  if (server) entity.href = `server.html?entity=${server}`;
  const level = el("span", "alert-level", String(a.level).toLowerCase());
  const value =
    a.value === null || a.value === undefined
      ? "—"
      : `${formatValue(a.metric ?? "", a.value)} (threshold ${formatValue(a.metric ?? "", a.threshold)})`;
  const cells = [
    time,
    level,
    el("span", "alert-status", statusText(a)),
    entity,
    el("span", "alert-rule", a.rule ?? ""),
    el("span", "alert-value", value),
    el("span", "alert-message", a.message ?? ""),
  ];
  tr.append(
    ...cells.map((content) => {
      const td = el("td");
      td.append(content);
      return td;
    }),
  );
  return tr;
}

function showRules() {
  document
    .getElementById("rule-names")
    .replaceChildren(...[...rules].sort().map((rule) => new Option(rule, rule)));
}

async function load() {
  const mine = ++token;
  writeUrl();
  const summary = document.getElementById("history-summary");
  summary.classList.remove("error");
  summary.textContent = "Loading…";
  let answer;
  try {
    answer = await getJSON("/alerts/history", query());
  } catch (error) {
    if (mine !== token) return;
    document.getElementById("history-rows").replaceChildren();
    summary.classList.add("error");
    summary.textContent =
      error instanceof AuthError
        ? "This server wants a token for reads: paste one in the token box (top right)."
        : `Could not load the alert history: ${error.detail || error.message}. ` +
          "Check the filters (an entity is a path or a glob such as c01/r01/**).";
    showPager(0, 0);
    return;
  }
  if (mine !== token) return;
  const alerts = answer.alerts ?? [];
  const total = Number.isFinite(answer.total) ? answer.total : alerts.length;
  for (const a of alerts) if (a.rule) rules.add(a.rule);
  showRules();
  const rows = document.getElementById("history-rows");
  if (alerts.length === 0) {
    const tr = el("tr", "placeholder-row");
    const td = el("td", "placeholder", offset ? "No alerts on this page." : "No alert matches.");
    td.colSpan = 7;
    tr.append(td);
    rows.replaceChildren(tr);
  } else {
    rows.replaceChildren(...alerts.map(row));
  }
  summary.textContent = alerts.length
    ? `Alerts ${offset + 1}–${offset + alerts.length} of ${total}, newest first.`
    : `${total} alert${total === 1 ? "" : "s"} match.`;
  summary.dataset.total = String(total);
  showPager(alerts.length, total);
}

function showPager(shown, total) {
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  prev.disabled = offset === 0;
  next.disabled = offset + shown >= total;
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;
  document.getElementById("page-info").textContent = total ? `Page ${page} of ${pages}` : "";
}

async function main() {
  mountTokenBox(document.querySelector(".topbar-meta"));
  readUrl();
  try {
    const status = await getJSON("/status");
    newest = status.sim_time_ms ?? null;
    setClock(newest);
  } catch (error) {
    console.warn("status:", error.message);
  }
  picker = new RangePicker(document.getElementById("range-bar"), {
    range: rangeFromUrl("24h"),
    nowMs: () => newest ?? Date.now(),
    onChange: () => {
      offset = 0;
      load();
    },
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    limit = Number(field("limit").value) || 50;
    offset = 0;
    load();
  });
  for (const name of ["level", "status", "limit"]) {
    field(name).addEventListener("change", () => form.requestSubmit());
  }
  document.getElementById("f-clear").addEventListener("click", () => {
    for (const name of FILTERS) field(name).value = "";
    form.requestSubmit();
  });
  document.getElementById("page-prev").addEventListener("click", () => {
    offset = Math.max(0, offset - limit);
    load();
  });
  document.getElementById("page-next").addEventListener("click", () => {
    offset += limit;
    load();
  });
  getJSON("/alerts", { group_by: "rule" })
    .then(({ alerts }) => {
      for (const a of alerts ?? []) if (a.rule) rules.add(a.rule);
      showRules();
    })
    .catch(() => {}); // Suggestions only.
  load();
}

main();
