// The time range of a page: a preset ("last 6 hours", on the data's clock, so it follows the
// live data) or an absolute from/to (custom, or a zoom). It lives in the URL (`range=6h`, or
// `from=<ms>&to=<ms>`), so a view can be shared, and it picks the query step so that every
// series comes back as a few hundred points: raw samples for short ranges, buckets of whole
// minutes (the 1m tier) or hours (the 1h tier) for long ones. GET /api/v1/series reads the tier
// from the step (docs/API.md, "Series and tiers").

import { formatDateTime } from "./format.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const PRESETS = [
  { key: "15m", spanMs: 15 * MINUTE, label: "15m", text: "Last 15 minutes" },
  { key: "1h", spanMs: HOUR, label: "1h", text: "Last hour" },
  { key: "6h", spanMs: 6 * HOUR, label: "6h", text: "Last 6 hours" },
  { key: "24h", spanMs: DAY, label: "24h", text: "Last 24 hours" },
  { key: "7d", spanMs: 7 * DAY, label: "7d", text: "Last 7 days" },
];

// The twin sends a sample every 5 s; raw rows are at that spacing.
export const RAW_INTERVAL_MS = 5_000;
// At most this many points per series: a chart is under 1,500 px wide, so more cannot be seen.
export const MAX_POINTS = 720;
// Candidate steps, finest first; whole minutes read the 1m tier, whole hours the 1h tier.
const STEPS = [
  ["1m", MINUTE],
  ["2m", 2 * MINUTE],
  ["5m", 5 * MINUTE],
  ["10m", 10 * MINUTE],
  ["15m", 15 * MINUTE],
  ["30m", 30 * MINUTE],
  ["1h", HOUR],
  ["2h", 2 * HOUR],
  ["3h", 3 * HOUR],
  ["6h", 6 * HOUR],
  ["12h", 12 * HOUR],
  ["1d", DAY],
];
// Zooming closer than this shows nothing more: a few raw samples.
export const MIN_SPAN_MS = MINUTE;

// The step for a span: null (raw rows) while they are few enough, else the finest bucket.
export function pickStep(spanMs) {
  if (spanMs / RAW_INTERVAL_MS <= MAX_POINTS) return { step: null, stepMs: 0 };
  for (const [step, stepMs] of STEPS) {
    if (spanMs / stepMs <= MAX_POINTS) return { step, stepMs };
  }
  const [step, stepMs] = STEPS[STEPS.length - 1];
  return { step, stepMs };
}

// Words for what a chart shows: "raw samples", "2-minute averages (1m tier)".
export function describeStep(stepMs) {
  if (!stepMs) return "raw samples";
  const tier = stepMs % HOUR === 0 ? "1h" : "1m";
  const n = stepMs % HOUR === 0 ? stepMs / HOUR : stepMs / MINUTE;
  const unit = stepMs % HOUR === 0 ? "hour" : "minute";
  const size = stepMs % DAY === 0 ? `${stepMs / DAY}-day` : `${n}-${unit}`;
  return `${size} buckets from the ${tier} tier`;
}

function parseTime(text) {
  if (text === null || text === "") return null;
  const n = Number(text);
  if (Number.isFinite(n)) return n;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

// The range in the page's URL; `fallback` is a preset key.
export function rangeFromUrl(fallback = "1h", search = location.search) {
  const params = new URLSearchParams(search);
  const from = parseTime(params.get("from"));
  const to = parseTime(params.get("to"));
  if (from !== null && to !== null && to > from) return { from, to };
  const preset = PRESETS.find((p) => p.key === params.get("range"));
  return { preset: (preset ?? PRESETS.find((p) => p.key === fallback)).key };
}

// Writes the range into the URL (replacing the entry: the back button leaves the page as it
// came), keeping the page's other parameters.
export function rangeToUrl(range) {
  const url = new URL(location.href);
  for (const key of ["range", "from", "to"]) url.searchParams.delete(key);
  if (range.preset) url.searchParams.set("range", range.preset);
  else {
    url.searchParams.set("from", String(Math.round(range.from)));
    url.searchParams.set("to", String(Math.round(range.to)));
  }
  history.replaceState(history.state, "", url);
}

export function presetOf(range) {
  return PRESETS.find((p) => p.key === range.preset) ?? null;
}

// [from, to] of a range; a preset ends at `nowMs` (the newest sample: the data's clock).
export function bounds(range, nowMs) {
  const preset = presetOf(range);
  if (preset) return [nowMs - preset.spanMs, nowMs];
  return [range.from, range.to];
}

// What a page needs for its queries: the bounds, the step, and whether it follows live data.
export function view(range, nowMs) {
  const [from, to] = bounds(range, nowMs);
  return { from, to, ...pickStep(to - from), live: Boolean(presetOf(range)) };
}

export function describeRange(range) {
  const preset = presetOf(range);
  if (preset) return preset.text;
  return `${formatDateTime(range.from)} – ${formatDateTime(range.to)}`;
}

// <input type="datetime-local"> speaks local time without a zone.
function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The range bar: preset buttons, a custom from/to form, and "Reset zoom" after a zoom.
//   container: an element to fill; range: the initial range; nowMs(): the data clock
//   onChange(range): called after every change (the URL is already updated)
export class RangePicker {
  constructor(container, { range, nowMs, onChange }) {
    Object.assign(this, { container, range, nowMs, onChange });
    this.beforeZoom = null;
    this.build();
    this.show();
  }

  build() {
    const group = el("div", "range-presets");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Time range");
    this.buttons = PRESETS.map((preset) => {
      const button = el("button", "range-btn", preset.label);
      button.type = "button";
      button.dataset.range = preset.key;
      button.title = preset.text;
      button.addEventListener("click", () => this.set({ preset: preset.key }));
      group.append(button);
      return button;
    });
    const custom = el("details", "range-custom");
    const summary = el("summary", "range-btn", "Custom");
    summary.dataset.range = "custom";
    const form = el("form", "range-form");
    const from = el("input");
    const to = el("input");
    Object.assign(from, { type: "datetime-local", id: "range-from", required: true });
    Object.assign(to, { type: "datetime-local", id: "range-to", required: true });
    const fromLabel = el("label", "", "From");
    const toLabel = el("label", "", "To");
    fromLabel.append(from);
    toLabel.append(to);
    const apply = el("button", "btn btn-primary", "Apply");
    apply.type = "submit";
    apply.id = "range-apply";
    const error = el("p", "range-error");
    error.hidden = true;
    form.append(fromLabel, toLabel, apply, error);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const a = Date.parse(from.value);
      const b = Date.parse(to.value);
      if (!Number.isFinite(a) || !Number.isFinite(b) || b - a < MIN_SPAN_MS) {
        error.textContent = "Pick a start before the end, at least a minute apart.";
        error.hidden = false;
        return;
      }
      error.hidden = true;
      custom.open = false;
      this.set({ from: a, to: b });
    });
    custom.addEventListener("toggle", () => {
      if (!custom.open) return;
      const [a, b] = bounds(this.range, this.nowMs());
      from.value = toLocalInput(a);
      to.value = toLocalInput(b);
    });
    custom.append(summary, form);
    this.customButton = summary;
    this.custom = custom;

    this.reset = el("button", "btn range-reset", "Reset zoom");
    this.reset.type = "button";
    this.reset.id = "zoom-reset";
    this.reset.hidden = true;
    this.reset.addEventListener("click", () => this.resetZoom());

    this.label = el("span", "range-label");
    this.label.id = "range-label";
    this.label.setAttribute("aria-live", "polite");
    this.container.replaceChildren(group, custom, this.reset, this.label);
  }

  // A new range chosen by the user (a preset or custom): any zoom is forgotten.
  set(range) {
    this.beforeZoom = null;
    this.apply(range);
  }

  // A drag on a chart: an absolute range; "Reset zoom" goes back to what was there before.
  zoom(from, to) {
    if (to - from < MIN_SPAN_MS) {
      const mid = (from + to) / 2;
      [from, to] = [mid - MIN_SPAN_MS / 2, mid + MIN_SPAN_MS / 2];
    }
    if (!this.beforeZoom) this.beforeZoom = this.range;
    this.apply({ from, to });
  }

  resetZoom() {
    const back = this.beforeZoom;
    this.beforeZoom = null;
    if (back) this.apply(back);
  }

  apply(range) {
    this.range = range;
    rangeToUrl(range);
    this.show();
    this.onChange(range);
  }

  // `detail`: what the charts show (the step), set by the page after it queried.
  show(detail = this.detail) {
    this.detail = detail;
    for (const button of this.buttons) {
      const on = button.dataset.range === this.range.preset;
      button.classList.toggle("active", on);
      button.setAttribute("aria-pressed", String(on));
    }
    this.customButton.classList.toggle("active", !this.range.preset);
    this.reset.hidden = !this.beforeZoom;
    const zoomed = this.beforeZoom ? " (zoomed)" : "";
    const text = `${describeRange(this.range)}${zoomed}`;
    this.label.textContent = detail ? `${text} · ${detail}` : text;
    this.container.dataset.range = this.range.preset ?? "custom";
  }
}
