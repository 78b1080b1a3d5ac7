// The report archive (reports.html): the daily, weekly and monthly reports `rackwatch run`
// makes at 00:05 (docs/REPORTS.md), newest first, each with a link that opens its HTML and
// links that download its JSON and CSV; and "Generate now" for any period (POST /reports, a
// control token: it costs the server seconds of work and writes files).
//
// GET /reports once a minute (the archive changes at most a few times a day) and at once
// after a report is made.

import { AuthError, getJSON } from "./api.js";
import { act, busy, mountTokenBox } from "./control.js";
import { formatBytes } from "./format.js";
import { el } from "./ui.js";

const REFRESH_MS = 60_000;
const KINDS = ["day", "week", "month"];
const MONTHS = new Intl.DateTimeFormat("en-GB", { month: "long", year: "numeric", timeZone: "UTC" });
const WHEN = new Intl.DateTimeFormat("en-GB", {
  dateStyle: "medium",
  timeStyle: "short",
});

// How people name a period, from its kind and first day (YYYY-MM-DD).
export function periodLabel(kind, date) {
  if (kind === "day") return date;
  if (kind === "week") return `Week of ${date}`;
  return MONTHS.format(new Date(`${date}T00:00:00Z`));
}

function fileLink(report, format, label, download) {
  const file = report.files[format];
  if (!file) return null;
  const link = el("a", "report-link", label);
  link.href = file.url;
  link.dataset.format = format;
  if (download) link.download = file.name;
  else link.target = "_blank";
  link.title = `${file.name} (${formatBytes(file.size)})`;
  return link;
}

function row(report) {
  const tr = el("tr", "report-row");
  tr.dataset.name = report.name;
  const open = el("td");
  const label = periodLabel(report.period, report.date);
  open.append(fileLink(report, "html", label, false) ?? label); // no HTML archived: no link
  const downloads = el("td", "report-downloads");
  for (const [format, label] of [
    ["json", "JSON"],
    ["csv", "CSV"],
  ]) {
    const link = fileLink(report, format, label, true);
    if (link) downloads.append(link, " ");
  }
  tr.append(
    open,
    el("td", "", WHEN.format(new Date(report.created_ms))),
    el("td", "num", formatBytes(report.size)),
    downloads,
  );
  return tr;
}

function table(reports) {
  if (!reports.length) return el("p", "hint", "None yet.");
  const t = el("table", "history-table reports-table");
  const head = el("tr");
  for (const label of ["Period", "Made", "Size", "Download"]) {
    const th = el("th", label === "Size" ? "num" : "", label);
    th.scope = "col";
    head.append(th);
  }
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  tbody.append(...reports.map(row));
  t.append(thead, tbody);
  return t;
}

function draw(answer) {
  for (const kind of KINDS) {
    const mine = answer.reports.filter((r) => r.period === kind);
    document.querySelector(`.table-wrap[data-kind="${kind}"]`).replaceChildren(table(mine));
  }
  const n = answer.reports.length;
  document.getElementById("reports-summary").textContent =
    `${n} report${n === 1 ? "" : "s"} archived · times of day in ${answer.timezone}`;
}

async function refresh() {
  try {
    draw(await getJSON("/reports"));
  } catch (error) {
    document.getElementById("reports-summary").textContent =
      error instanceof AuthError
        ? "This server wants a token for reads: paste one in the token box (top right)."
        : `Could not load the reports: ${error.detail || error.message}`;
  }
}

async function generate(event) {
  event.preventDefault();
  const params = new URLSearchParams({ period: document.getElementById("report-period").value });
  const date = document.getElementById("report-date").value;
  if (date) params.set("date", date);
  const button = document.getElementById("report-generate");
  const summary = document.getElementById("reports-summary");
  await busy(button, async () => {
    summary.textContent = "Making the report…";
    const answer = await act(
      "POST",
      `/reports?${params}`,
      undefined,
      (a) => `Report ${a.report.name} made in ${a.seconds.toFixed(1)} s.`,
    );
    await refresh();
    if (answer) {
      document.querySelector(`tr[data-name="${answer.report.name}"]`)?.classList.add("report-new");
    }
  });
}

function main() {
  mountTokenBox(document.querySelector(".topbar-meta"));
  document.getElementById("report-form").addEventListener("submit", generate);
  refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
