// GPU recommendation on the overview (seed 004): the top 3 machines by free GPU memory
// (`like_server`), each GPU machine's like index (high, medium, low: a word and a colour), and
// a placement form ("N GPUs with M GB each and C cores": where it fits, best first, with why).
// Read from GET /recommend every few seconds; the panel stays hidden while there is no GPU
// machine. It starts itself: index.html loads it beside overview.js.

import { entityPath, getJSON } from "./api.js";
import { formatBytes, formatPercent } from "./format.js";
import { el } from "./ui.js";

const REFRESH_MS = 10_000;
// Enough chips to see a rack's worth of machines; the rest are counted.
const MAX_MACHINES_SHOWN = 48;
const MAX_CANDIDATES_SHOWN = 5;
const MAX_REJECTED_SHOWN = 3;
const LEVEL_ORDER = { high: 0, medium: 1, low: 2 };
const LEVEL_TEXT = { high: "high", medium: "medium", low: "low" };

// A real machine has its host page, a twin server its server page.
function pageOf(path) {
  const page = path.startsWith("host/") ? "host.html" : "server.html";
  return `${page}?entity=${entityPath(path)}`;
}

function machineLink(path, className) {
  const link = el("a", className, path);
  link.href = pageOf(path);
  return link;
}

// The like index as a word on a coloured chip (never colour alone); "excluded" when offline.
function likeChip(level, excluded) {
  const chip = el("span", "like-chip", excluded ? "excluded" : (LEVEL_TEXT[level] ?? "—"));
  chip.dataset.like = excluded ? "excluded" : (level ?? "unknown");
  return chip;
}

function freeText(free, total) {
  return total === null || total === undefined
    ? `${formatBytes(free)} free`
    : `${formatBytes(free)} free of ${formatBytes(total)}`;
}

function drawTop(list, top) {
  if (!top.length) {
    list.replaceChildren(el("li", "placeholder", "No machine has GPU memory free now."));
    return;
  }
  list.replaceChildren(
    ...top.map((server) => {
      const item = el("li", "gpu-top-item");
      item.dataset.entity = server.entity;
      item.dataset.rank = String(server.rank);
      item.append(
        el("span", "gpu-rank", `#${server.rank}`),
        machineLink(server.entity, "gpu-name"),
        el(
          "span",
          "gpu-free",
          freeText(server.gpu_memory_free_bytes, server.gpu_memory_total_bytes),
        ),
        el(
          "span",
          "gpu-sub",
          `${server.n_cards} card${server.n_cards === 1 ? "" : "s"} · ` +
            `${formatPercent(server.gpu_utilization_ratio)} busy`,
        ),
        likeChip(server.like_index, false),
      );
      return item;
    }),
  );
}

// Available machines first, the most recommended first, then by free memory; excluded last.
function byRecommendation(a, b) {
  if (a.available !== b.available) return a.available ? -1 : 1;
  const level = (LEVEL_ORDER[a.like_index] ?? 3) - (LEVEL_ORDER[b.like_index] ?? 3);
  if (level) return level;
  const free = (b.gpu_memory_free_bytes ?? -1) - (a.gpu_memory_free_bytes ?? -1);
  return free || a.entity.localeCompare(b.entity);
}

function drawMachines(list, more, machines) {
  const sorted = [...machines].sort(byRecommendation);
  const shown = sorted.slice(0, MAX_MACHINES_SHOWN);
  list.replaceChildren(
    ...shown.map((machine) => {
      const item = el("li", "gpu-machine");
      item.dataset.entity = machine.entity;
      item.dataset.like = machine.available ? (machine.like_index ?? "unknown") : "excluded";
      item.title = machine.why;
      item.append(
        machineLink(machine.entity, "gpu-machine-name"),
        likeChip(machine.like_index, !machine.available),
        el("span", "gpu-machine-free", formatBytes(machine.gpu_memory_free_bytes)),
      );
      return item;
    }),
  );
  more.hidden = sorted.length <= shown.length;
  more.textContent = `and ${sorted.length - shown.length} more`;
}

function drawCounts(node, counts) {
  const parts = [
    `${counts.high} high`,
    `${counts.medium} medium`,
    `${counts.low} low`,
    ...(counts.excluded ? [`${counts.excluded} excluded`] : []),
  ];
  node.textContent = parts.join(" · ");
}

function candidateItem(candidate) {
  const item = el("li", "place-candidate");
  item.dataset.entity = candidate.entity;
  const head = el("div", "place-head");
  head.append(
    el("span", "gpu-rank", `#${candidate.rank}`),
    machineLink(candidate.entity, "gpu-name"),
    el("span", "gpu-sub", candidate.cards.map((c) => c.split("/").pop()).join(", ")),
    likeChip(candidate.like_index, false),
  );
  item.append(head, el("p", "place-why", candidate.why));
  return item;
}

function drawPlacement(box, answer) {
  const summary = el(
    "p",
    "place-summary",
    answer.n_candidates
      ? `${answer.n_candidates} machine${answer.n_candidates === 1 ? "" : "s"} can take it` +
          ` (best first: most memory left on the tightest card, then the least busy cards).`
      : "No machine can take it now.",
  );
  summary.dataset.candidates = String(answer.n_candidates);
  const list = el("ol", "place-list");
  list.append(...answer.candidates.slice(0, MAX_CANDIDATES_SHOWN).map(candidateItem));
  const nodes = [summary, list];
  if (answer.rejected.length) {
    const why = el("ul", "place-rejected");
    why.append(
      ...answer.rejected.slice(0, MAX_REJECTED_SHOWN).map((r) => {
        const item = el("li", "place-rejected-item");
        item.dataset.entity = r.entity;
        item.append(machineLink(r.entity, "gpu-name"), el("span", "place-why", `: ${r.why}`));
        return item;
      }),
    );
    const rest = answer.n_rejected - Math.min(answer.rejected.length, MAX_REJECTED_SHOWN);
    const text = rest > 0 ? `Cannot take it (and ${rest} more):` : "Cannot take it:";
    nodes.push(el("p", "hint", text), why);
  }
  box.replaceChildren(...nodes);
}

function mountPlacement(form, box) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button");
    button.disabled = true;
    box.setAttribute("aria-busy", "true");
    try {
      const answer = await getJSON("/recommend/placement", {
        gpus: data.get("gpus") || 1,
        gpu_memory_gb: data.get("gpu_memory_gb") || 0,
        cores: data.get("cores") || 0,
        limit: MAX_CANDIDATES_SHOWN,
      });
      drawPlacement(box, answer);
    } catch (error) {
      // A refused value (400) says which field and why: show it where the answer would be.
      box.replaceChildren(el("p", "placeholder error", error.detail || error.message));
    } finally {
      button.disabled = false;
      box.removeAttribute("aria-busy");
    }
  });
}

async function refresh(parts) {
  let answer;
  try {
    answer = await getJSON("/recommend", { cards: false });
  } catch (error) {
    console.warn("GPU recommendation:", error.message);
    return;
  }
  const machines = answer.machines ?? [];
  parts.panel.dataset.machines = String(machines.length);
  parts.panel.hidden = machines.length === 0;
  if (!machines.length) return;
  drawCounts(parts.counts, answer.counts);
  drawTop(parts.top, answer.like_server ?? []);
  drawMachines(parts.machines, parts.more, machines);
}

function main() {
  const panel = document.getElementById("gpu-reco");
  if (!panel) return;
  const parts = {
    panel,
    counts: document.getElementById("gpu-reco-counts"),
    top: document.getElementById("gpu-top"),
    machines: document.getElementById("gpu-machines"),
    more: document.getElementById("gpu-machines-more"),
  };
  const answer = document.getElementById("gpu-place-answer");
  mountPlacement(document.getElementById("gpu-place"), answer);
  refresh(parts);
  setInterval(() => refresh(parts), REFRESH_MS);
}

main();
