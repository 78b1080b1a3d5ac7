// The charts of a page about one entity (a server, a host): line charts over the page's time
// range (timerange.js: 15 min to 7 days or custom, kept in the URL; drag across a chart to
// zoom, every chart follows), their history from GET /series at the step the range picks (raw
// rows, or buckets from the rollup tiers), faults and alerts marked (markers.js), and, while
// the range follows the data, the stream's samples pushed as they come.
//
// The stream is a thinned, newest-only view; the store is the record. The history is re-read
// now and then so the charts show every stored sample and every reported gap; bucketed ranges
// (no live points) more often, so their newest bucket keeps up.

import { getJSON } from "./api.js";
import { TimeChart, lineOf } from "./charts.js";
import { loadMarkers } from "./markers.js";
import { RangePicker, describeStep, rangeFromUrl, view } from "./timerange.js";

const HISTORY_REFRESH_MS = 30_000;
const BUCKETS_REFRESH_MS = 10_000;

const key = (entity, metric) => `${entity}|${metric}`;

export class PageCharts {
  //   entity: the page's entity; the history is read for it and everything under it
  //   rangeBar: the element the range picker fills; section: the charts' element (its
  //     data-step says what they show)
  //   nowMs(): the data clock, where a preset range ends
  //   keepMarker(marker): which markers to draw (default: those markers.js relates to entity)
  //   onRange(): after the user chose a range, once the charts have started to follow it
  //   onMarkers(markers): after markers were loaded (the page's other charts)
  constructor({
    entity,
    rangeBar,
    section,
    nowMs,
    fallback = "1h",
    keepMarker = () => true,
    onRange = () => {},
    onMarkers = () => {},
  }) {
    Object.assign(this, { entity, section, nowMs, keepMarker, onMarkers });
    this.charts = []; // [{chart, keys: ["entity|metric", ...]}]
    this.token = 0;
    this.timer = null;
    this.picker = new RangePicker(rangeBar, {
      range: rangeFromUrl(fallback),
      nowMs,
      onChange: () => {
        this.reload();
        onRange();
      },
    });
  }

  // A line chart in `container` of `series` ([[entity, metric, label], ...]); `metric` gives
  // the axis and legend their unit. Other options go to TimeChart (stepped, yRange...).
  add(container, { metric, series, ...options }) {
    const chart = new TimeChart(container, {
      metric,
      series: series.map(([, , label]) => ({ label })),
      onZoom: (from, to) => this.picker.zoom(from, to),
      ...options,
    });
    this.charts.push({ chart, keys: series.map(([e, m]) => key(e, m)) });
    return chart;
  }

  // The range now: its bounds, its step, whether it follows the data.
  view() {
    return view(this.picker.range, this.nowMs());
  }

  // Reads the history again (and plans the next read); a failure is logged and retried then.
  reload() {
    return this.load().catch((error) => console.warn("history:", error.message));
  }

  async load() {
    const token = ++this.token; // A newer range wins over a slower, older answer.
    clearTimeout(this.timer);
    const v = this.view();
    this.timer = setTimeout(
      () => this.reload(),
      v.live && v.step === null ? HISTORY_REFRESH_MS : BUCKETS_REFRESH_MS,
    );
    for (const { chart } of this.charts) chart.setWindow(v.from, v.to);
    this.picker.show(describeStep(v.stepMs));
    this.loadMarkers(v);
    const metrics = [
      ...new Set(this.charts.flatMap(({ keys }) => keys.map((k) => k.split("|")[1]))),
    ];
    if (!metrics.length) return;
    const answer = await getJSON("/series", {
      entity: `${this.entity}/**`,
      metric: metrics,
      from: Math.floor(v.from),
      to: Math.ceil(v.to) + 1,
      step: v.step,
    });
    if (token !== this.token) return;
    const byKey = new Map();
    for (const s of answer.series ?? []) byKey.set(key(s.entity, s.metric), lineOf(answer, s));
    // Raw rows while the range follows the stream: live samples newer than the store's stay.
    const keepLive = v.live && v.step === null;
    for (const { chart, keys } of this.charts) {
      chart.setHistory(
        keys.map((k) => byKey.get(k)),
        { keepLive },
      );
    }
    this.section.dataset.step = v.step ?? "raw";
  }

  async loadMarkers(v = this.view()) {
    let markers;
    try {
      markers = (await loadMarkers(v.from, v.to, this.entity)).filter(this.keepMarker);
    } catch (error) {
      console.warn("markers:", error.message);
      return;
    }
    for (const { chart } of this.charts) chart.setMarkers(markers);
    this.onMarkers(markers);
  }

  // A stream message ({entity: {metric: value}} at tsMs): while the range follows the data,
  // the charts slide and raw ones take the samples. False when the range is fixed.
  push(tsMs, data) {
    const v = this.view();
    if (!v.live) return false; // A custom or zoomed range does not move.
    for (const { chart, keys } of this.charts) {
      chart.setWindow(v.from, v.to);
      if (v.step !== null) continue; // Buckets come from the store, re-read now and then.
      const values = keys.map((k) => {
        const [e, m] = k.split("|");
        return data[e]?.[m]; // undefined: not in this message; null: the sensor answered nothing.
      });
      if (values.some((x) => x !== undefined)) chart.push(tsMs, values);
    }
    return true;
  }

  // Moves a following range on with the clock even while nothing arrives (the charts of a
  // silent host show its silence growing).
  slide() {
    const v = this.view();
    if (v.live) for (const { chart } of this.charts) chart.setWindow(v.from, v.to);
  }
}
