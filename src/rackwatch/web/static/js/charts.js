// uPlot helpers: live line charts over a sliding window, and OHLC candlesticks.
// uPlot is loaded as a classic script (vendor/uplot) before the modules, hence the global.

import {
  formatDateTime,
  formatDisplay,
  formatTicks,
  formatTimeTicks,
  toDisplay,
} from "./format.js";

const uPlot = globalThis.uPlot;

// The stream thins a fast twin to the newest sample per message, so live points can be tens of
// seconds apart; only a longer silence is shown as a hole.
const STREAM_GAP_MS = 120_000;

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Colours come from css/app.css, so the theme lives in one place.
export function seriesColor(i) {
  return cssVar(`--series-${(i % 6) + 1}`);
}

function axisTheme() {
  const text = cssVar("--text-muted");
  const grid = cssVar("--grid");
  return {
    stroke: text,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1, size: 4 },
    font: "12px system-ui, sans-serif",
  };
}

const timeAxis = () => ({
  ...axisTheme(),
  space: 70,
  values: (u, splits, axisIdx, space, incr) => formatTimeTicks(splits, incr),
});

const valueAxis = (metricOf, extra = {}) => ({
  ...axisTheme(),
  size: 70,
  values: (u, splits, axisIdx, space, incr) => formatTicks(metricOf(), splits, incr),
  ...extra,
});

// The newest sample of a column (null included: a sensor that answered nothing shows "—").
function lastSample(column) {
  for (let i = column.length - 1; i >= 0; i -= 1) if (column[i] !== undefined) return column[i];
  return null;
}

// Legends show the hovered point, and the newest one when the cursor is elsewhere.
function legendValue(format) {
  return (u, v, sidx, idx) => format(idx == null ? lastSample(u.data[sidx]) : v);
}

function refreshLegend(plot) {
  if (!(plot.cursor.left >= 0)) plot.setLegend({ idx: null });
}

function chartHeight(container) {
  // A phone gets shorter charts so two fit on a screen; a laptop gets room for detail.
  return container.clientWidth < 500 ? 170 : 220;
}

// Keep a chart as wide as its box; uPlot itself only knows fixed pixel sizes.
function autoResize(plot, container, heightOf = chartHeight) {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(container.clientWidth);
    const height = heightOf(container);
    if (width > 0 && (width !== plot.width || height !== plot.height)) {
      plot.setSize({ width, height });
    }
  });
  observer.observe(container);
  return observer;
}

// Merge several (ts, value) series onto one x axis for uPlot. A null value (the sensor answered
// nothing) breaks the line; `undefined` (this series simply has no sample at an x that another
// series has) is spanned. Each gap the API reports gets an explicit null inside it, so it is
// never bridged. Gaps are not guessed from spacing here: the live stream sends only the newest
// sample per message, so its spacing says nothing about what the store holds.
export function alignSeries(list) {
  const rows = new Map();
  const columns = list.map(() => new Map());
  list.forEach((s, k) => {
    const ts = s.ts;
    for (let i = 0; i < ts.length; i += 1) {
      rows.set(ts[i], true);
      columns[k].set(ts[i], s.value[i] ?? null);
    }
    for (const [from, to] of s.gaps ?? []) {
      const mid = Math.round((from + to) / 2);
      if (!columns[k].has(mid)) {
        rows.set(mid, true);
        columns[k].set(mid, null);
      }
    }
  });
  const xs = [...rows.keys()].sort((a, b) => a - b);
  return [xs, ...columns.map((col) => xs.map((x) => (col.has(x) ? col.get(x) : undefined)))];
}

// A live line chart of one metric (one or more series), history first, then pushed samples.
// `windowMs` is a sliding window on the data's own clock (the twin's), not the browser's.
export class TimeChart {
  // `yRange`/`ySplits` fix the y axis where the values are a small set (fan levels 0..3).
  constructor(container, { metric, series, windowMs, stepped = false, yRange, ySplits }) {
    this.container = container;
    this.metric = metric;
    this.windowMs = windowMs;
    this.store = series.map(() => ({ ts: [], value: [], gaps: [] }));
    this.pending = false;
    // A level holds until the next sample: draw it as steps, not as slopes between levels.
    const stepPaths = stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {};
    this.plot = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: chartHeight(container),
        ms: 1,
        // Room on the right for the last time label, which uPlot centres on the edge.
        padding: [12, 28, 0, 0],
        cursor: { points: { size: 6 } },
        legend: { live: true },
        scales: {
          x: { time: true, range: (u, min, max) => this.xRange(min, max) },
          // Never a zero-height axis for a flat line (a steady fan level, a healthy disk).
          y: { range: yRange ? () => yRange : (u, min, max) => padRange(min, max) },
        },
        axes: [
          timeAxis(),
          // Spread, not `splits: undefined`: uPlot copies keys; undefined erases its default.
          valueAxis(() => metric, ySplits ? { splits: () => ySplits } : {}),
        ],
        series: [
          { label: "Time", value: legendValue(formatDateTime) },
          ...series.map((s, i) => ({
            label: s.label,
            stroke: s.color ?? seriesColor(i),
            width: 2,
            ...stepPaths,
            spanGaps: false,
            points: { show: false },
            value: legendValue((v) => formatDisplay(metric, v)),
          })),
        ],
      },
      [[], ...series.map(() => [])],
      container,
    );
    this.observer = autoResize(this.plot, container);
  }

  // The window slides with the newest sample; while less than a window of data exists (a
  // server that just started) the chart spans what there is instead of a mostly empty axis.
  xRange(min, max) {
    if (this.newest === undefined || min === null) return [min ?? 0, max ?? 1];
    const from = Math.max(this.newest - this.windowMs, min);
    return from < this.newest ? [from, this.newest] : [from - 60_000, this.newest];
  }

  // History from REST: one {ts, value, gaps} per series, values in base units.
  // Live samples newer than the history are kept: the stream may have started first.
  setHistory(list) {
    this.store = list.map((s, k) => {
      const ts = [...(s?.ts ?? [])];
      const value = (s?.value ?? []).map((v) => toDisplay(this.metric, v));
      const old = this.store[k];
      const end = ts.length ? ts[ts.length - 1] : -Infinity;
      for (let i = 0; i < old.ts.length; i += 1) {
        if (old.ts[i] > end) {
          ts.push(old.ts[i]);
          value.push(old.value[i]);
        }
      }
      const liveGaps = old.gaps.filter(([from]) => from >= end);
      return { ts, value, gaps: [...(s?.gaps ?? []), ...liveGaps] };
    });
    this.render();
  }

  // One live sample per series (undefined: no sample for that series in this message).
  // A stream silent for longer than `STREAM_GAP_MS` of data time is drawn as a gap until the
  // next history reload replaces the live points with what the store holds.
  push(tsMs, values) {
    values.forEach((v, k) => {
      if (v === undefined) return;
      const s = this.store[k];
      const last = s.ts[s.ts.length - 1];
      if (last !== undefined && tsMs <= last) return; // Already have it (history overlap).
      if (last !== undefined && tsMs - last > STREAM_GAP_MS) s.gaps.push([last, tsMs]);
      s.ts.push(tsMs);
      s.value.push(toDisplay(this.metric, v));
    });
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const newest = Math.max(...this.store.map((s) => s.ts[s.ts.length - 1] ?? -Infinity));
    if (!Number.isFinite(newest)) {
      this.plot.setData([[], ...this.store.map(() => [])]);
      return;
    }
    this.newest = newest;
    const cutoff = newest - this.windowMs;
    for (const s of this.store) {
      // Drop what slid out of the window, but one point: the line enters from the edge.
      let drop = 0;
      while (drop < s.ts.length - 1 && s.ts[drop + 1] < cutoff) drop += 1;
      if (drop > 0) {
        s.ts.splice(0, drop);
        s.value.splice(0, drop);
      }
      s.gaps = s.gaps.filter(([, to]) => to >= cutoff);
    }
    this.plot.setData(alignSeries(this.store));
    refreshLegend(this.plot);
  }

  destroy() {
    this.observer.disconnect();
    this.plot.destroy();
  }
}

// y range with some air, and never narrower than 10 % of the level: otherwise sensor noise of a
// steady 160 W fills the whole chart and looks like a problem.
function padRange(min, max) {
  if (min === null || max === null) return [0, 1];
  const mid = (min + max) / 2;
  const span = Math.max((max - min) * 1.2, Math.abs(mid) * 0.1, 1e-6);
  return [mid - span / 2, mid + span / 2];
}

const candleHeight = (container) => chartHeight(container) + 60;
const MIN_BUCKETS = 20;

// Candlesticks: uPlot has no candle series, so four hidden series (open/high/low/close) give the
// y range and the hover legend, and a draw hook paints wicks and bodies from them.
export class CandleChart {
  constructor(container, { metric }) {
    this.container = container;
    this.metric = metric;
    this.bucketMs = 60_000;
    this.partial = [];
    const hidden = (label) => ({
      label,
      paths: () => null,
      points: { show: false },
      value: legendValue((v) => formatDisplay(this.metric, v)),
    });
    this.plot = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: candleHeight(container),
        ms: 1,
        // Room on the right for the last time label, which uPlot centres on the edge.
        padding: [12, 28, 0, 0],
        cursor: { points: { show: false } },
        scales: {
          x: { time: true, range: (u, min, max) => this.xRange(min, max) },
          y: { range: (u, min, max) => padRange(min, max) },
        },
        axes: [timeAxis(), valueAxis(() => this.metric)],
        series: [
          // x holds bucket centres; the legend shows when the bucket started.
          {
            label: "Bucket",
            value: legendValue((v) => (v === null ? "—" : formatDateTime(v - this.bucketMs / 2))),
          },
          hidden("Open"),
          hidden("High"),
          hidden("Low"),
          hidden("Close"),
        ],
        hooks: { draw: [(u) => this.drawCandles(u)] },
      },
      [[], [], [], [], []],
      container,
    );
    this.observer = autoResize(this.plot, container, candleHeight);
  }

  // Half a bucket of margin each side, so the end candles are whole; and room for at least
  // MIN_BUCKETS, so two candles do not stretch into slabs across the chart.
  xRange(min, max) {
    if (min === null || max === null) return [0, 1];
    const half = this.bucketMs / 2;
    return [Math.min(min, max - (MIN_BUCKETS - 1) * this.bucketMs) - half, max + half];
  }

  // One rollup series from /api/v1/series (step 1m or 1h): ts are bucket starts.
  setData(series, bucketMs, metric = this.metric) {
    this.metric = metric;
    this.bucketMs = bucketMs;
    const n = series?.open?.length ?? 0;
    const ts = series?.ts ?? [];
    this.starts = Array.from({ length: n }, (_, i) => ts[i]);
    this.columns = ["open", "high", "low", "close"].map((k) =>
      (series?.[k] ?? []).map((v) => toDisplay(metric, v)),
    );
    // A bucket that lost samples is drawn faded: its OHLC is real but incomplete.
    this.partial = (series?.missing ?? []).map((m) => m > 0);
    this.redraw();
  }

  // A live sample updates the newest candle (or opens the next one), as the 1m rollup would.
  push(tsMs, value) {
    if (!this.starts || value === null || value === undefined) return;
    const v = toDisplay(this.metric, value);
    const start = Math.floor(tsMs / this.bucketMs) * this.bucketMs;
    const last = this.starts.length - 1;
    const [open, high, low, close] = this.columns;
    if (last >= 0 && this.starts[last] === start) {
      if (open[last] === null || open[last] === undefined) {
        open[last] = high[last] = low[last] = close[last] = v;
      } else {
        high[last] = Math.max(high[last], v);
        low[last] = Math.min(low[last], v);
        close[last] = v;
      }
    } else if (last < 0 || start > this.starts[last]) {
      this.starts.push(start);
      open.push(v);
      high.push(v);
      low.push(v);
      close.push(v);
      this.partial.push(false);
    } else {
      return; // An old sample: the stored rollup already holds it.
    }
    this.redraw();
  }

  redraw() {
    const xs = this.starts.map((s) => s + this.bucketMs / 2);
    this.plot.setData([xs, ...this.columns]);
    refreshLegend(this.plot);
  }

  drawCandles(u) {
    const [xs, open, high, low, close] = u.data;
    if (!xs.length) {
      this.container.dataset.candles = "0";
      return;
    }
    const ctx = u.ctx;
    const dpr = devicePixelRatio || 1;
    const up = cssVar("--candle-up");
    const down = cssVar("--candle-down");
    const bucketPx = Math.abs(u.valToPos(this.bucketMs, "x", true) - u.valToPos(0, "x", true));
    // Bodies fill most of their bucket but never merge into a bar chart, nor vanish.
    const bodyW = Math.max(dpr, Math.min(bucketPx * 0.7, 24 * dpr));
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    let drawn = 0;
    for (let i = 0; i < xs.length; i += 1) {
      const o = open[i];
      const h = high[i];
      const l = low[i];
      const c = close[i];
      // A bucket with no sample stays empty: a gap is shown, never invented.
      if ([o, h, l, c].some((v) => v === null || v === undefined)) continue;
      const x = Math.round(u.valToPos(xs[i], "x", true));
      const yo = u.valToPos(o, "y", true);
      const yc = u.valToPos(c, "y", true);
      const color = c >= o ? up : down;
      ctx.globalAlpha = this.partial[i] ? 0.45 : 1;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = Math.max(1, Math.round(dpr));
      ctx.beginPath();
      ctx.moveTo(x + 0.5, Math.round(u.valToPos(h, "y", true)));
      ctx.lineTo(x + 0.5, Math.round(u.valToPos(l, "y", true)));
      ctx.stroke();
      const bodyTop = Math.min(yo, yc);
      const bodyH = Math.max(dpr, Math.abs(yc - yo));
      ctx.fillRect(Math.round(x - bodyW / 2), Math.round(bodyTop), Math.round(bodyW), bodyH);
      drawn += 1;
    }
    ctx.restore();
    // Tests (and curious people) can tell a drawn chart from an empty one.
    this.container.dataset.candles = String(drawn);
  }

  destroy() {
    this.observer.disconnect();
    this.plot.destroy();
  }
}
