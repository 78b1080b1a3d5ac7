// uPlot helpers: line charts over the page's time range (live while the range follows the
// data), OHLC candlesticks, drag-to-zoom and fault/alert markers on both.
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

// Charts of one page share a cursor (hovering one shows the same instant on all of them).
const SYNC_KEY = "rackwatch";
// Alert markers closer than this (CSS px) are drawn as one, with a count: 15 servers alerting
// in the same step are one line saying 15, not a smudge.
const CLUSTER_PX = 6;
const TIP_LINES = 8;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Drag across a chart to zoom: uPlot draws the selection; the page decides what the new range
// is (every chart of the page follows), so uPlot does not rescale this one chart by itself.
function zoomPlugin(onZoom) {
  return {
    hooks: {
      setSelect: [
        (u) => {
          const { left, width } = u.select;
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (!onZoom || width < 4) return;
          onZoom(u.posToVal(left, "x"), u.posToVal(left + width, "x"));
        },
      ],
    },
  };
}

// Faults (bands while they last) and alerts (lines) drawn over a chart, as DOM elements in
// uPlot's cursor layer; when the pointer is over one, a tooltip says what it is.
class MarkerLayer {
  constructor(container) {
    this.container = container;
    this.markers = [];
    this.placed = [];
  }

  plugin() {
    return {
      hooks: {
        init: [
          (u) => {
            this.layer = el("div", "markers");
            this.layer.setAttribute("aria-hidden", "true");
            this.tip = el("div", "marker-tip");
            this.tip.setAttribute("role", "tooltip");
            this.tip.hidden = true;
            u.over.append(this.layer, this.tip);
          },
        ],
        draw: [(u) => this.place(u)],
        setCursor: [(u) => this.hover(u)],
      },
    };
  }

  set(markers, plot) {
    this.markers = [...(markers ?? [])].sort((a, b) => a.ts - b.ts);
    this.place(plot);
  }

  place(u) {
    if (!this.layer) return;
    const { min, max } = u.scales.x;
    if (min === null || max === null || min === undefined) return;
    const width = u.over.clientWidth;
    const faults = [];
    const alerts = [];
    for (const m of this.markers) {
      if (m.type === "fault") {
        const end = m.end ?? max;
        if (end < min || m.ts > max) continue;
        const left = u.valToPos(Math.max(m.ts, min), "x");
        const right = u.valToPos(Math.min(end, max), "x");
        faults.push({ left, right: Math.max(right, left + 2), markers: [m], kind: m.kind });
      } else if (m.ts >= min && m.ts <= max) {
        const x = u.valToPos(m.ts, "x");
        const last = alerts[alerts.length - 1];
        if (last && x - last.right <= CLUSTER_PX) {
          last.markers.push(m);
          last.right = x;
        } else {
          alerts.push({ left: x, right: x, markers: [m], kind: m.kind });
        }
      }
    }
    this.placed = [...faults, ...alerts];
    // Nodes are updated in place (the range slides with every live sample), never rebuilt.
    const nodes = [...this.layer.children];
    while (nodes.length > this.placed.length) nodes.pop().remove();
    this.placed.forEach((p, i) => {
      let node = nodes[i];
      if (!node) {
        node = el("div");
        this.layer.append(node);
      }
      const fault = p.markers[0].type === "fault";
      node.className = `marker ${fault ? "marker-fault" : "marker-alert"}`;
      node.dataset.kind = p.kind;
      node.dataset.level = p.markers.some((m) => m.level === "critical")
        ? "critical"
        : (p.markers[0].level ?? "warning");
      node.dataset.count = String(p.markers.length);
      node.dataset.ts = String(p.markers[0].ts);
      if (fault) {
        node.style.left = `${p.left}px`;
        node.style.width = `${Math.min(p.right, width) - p.left}px`;
        node.replaceChildren();
      } else {
        const x = (p.left + p.right) / 2;
        node.style.left = `${x}px`;
        node.style.width = "";
        // Near the right edge the count goes on the line's left, where there is room.
        node.classList.toggle("marker-flip", x > width - 24);
        const count = String(p.markers.length);
        if (p.markers.length === 1) node.replaceChildren();
        else if (node.textContent !== count) {
          node.replaceChildren(el("span", "marker-count", count));
        }
      }
    });
    this.container.dataset.markers = String(this.markers.length);
  }

  hover(u) {
    if (!this.tip) return;
    const x = u.cursor.left;
    // Only on the chart under the pointer: the others follow its cursor (sync), not its tip.
    const hit =
      x === null || x < 0 || !u.cursor.event
        ? []
        : this.placed.filter((p) => x >= p.left - CLUSTER_PX && x <= p.right + CLUSTER_PX);
    if (!hit.length) {
      this.tip.hidden = true;
      return;
    }
    const lines = hit.flatMap((p) => p.markers.map((m) => m.text));
    const shown = lines.slice(0, TIP_LINES).map((text) => el("div", "marker-tip-line", text));
    if (lines.length > TIP_LINES) {
      shown.push(el("div", "marker-tip-more", `and ${lines.length - TIP_LINES} more`));
    }
    this.tip.replaceChildren(...shown);
    this.tip.hidden = false;
    const room = u.over.clientWidth - this.tip.offsetWidth;
    this.tip.style.left = `${Math.max(0, Math.min(x + 12, room))}px`;
  }
}

// One /series answer's series as a line ({ts, value, gaps}, base units): raw values, or one
// column of the buckets (`avg`; `high` for a maximum) at each bucket's start, as the legend
// says it and as the candles do (a bucket's middle would put the open one past the data).
export function lineOf(answer, s, column = "avg") {
  if (s.value) return { ts: s.ts ?? [], value: s.value, gaps: s.gaps ?? [] };
  return { ts: s.ts ?? bucketStarts(answer, s), value: s[column] ?? [], gaps: s.gaps ?? [] };
}

// The largest value of all the series of a /series answer at each instant: the largest reading
// (raw rows) or the largest bucket maximum (`high`), e.g. the hottest CPU of the room. An
// instant where every series answered NULL stays a gap (null).
export function maxLine(answer) {
  const byTs = new Map();
  for (const s of answer.series ?? []) {
    const line = lineOf(answer, s, "high");
    line.ts.forEach((t, i) => {
      const v = line.value[i];
      const known = byTs.get(t);
      if (v === null || v === undefined) {
        if (known === undefined) byTs.set(t, null);
      } else if (known === null || known === undefined || v > known) {
        byTs.set(t, v);
      }
    });
  }
  const ts = [...byTs.keys()].sort((a, b) => a - b);
  return { ts, value: ts.map((t) => byTs.get(t)), gaps: [] };
}

// Bucket starts of a rollup answer that left `ts` out.
export function bucketStarts(answer, s) {
  const n = (s.value ?? s.open ?? []).length;
  return Array.from({ length: n }, (_, i) => answer.from_ms + i * answer.bucket_ms);
}

// A line chart of one metric (one or more series) over the page's time range: history from
// REST (raw samples, or bucket averages for long ranges), then, while the range follows the
// live data, samples pushed from the stream.
export class TimeChart {
  // `yRange`/`ySplits` fix the y axis where the values are a small set (fan levels 0..3).
  // `onZoom(from, to)`: the user dragged across the chart.
  constructor(container, { metric, series, stepped = false, yRange, ySplits, onZoom }) {
    this.container = container;
    this.metric = metric;
    this.window = null; // [from, to] of the page's range, on the data's clock
    this.store = series.map(() => ({ ts: [], value: [], gaps: [] }));
    this.pending = false;
    this.markers = new MarkerLayer(container);
    // A level holds until the next sample: draw it as steps, not as slopes between levels.
    const stepPaths = stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {};
    this.plot = new uPlot(
      {
        width: Math.max(200, container.clientWidth),
        height: chartHeight(container),
        ms: 1,
        // Room on the right for the last time label, which uPlot centres on the edge.
        padding: [12, 28, 0, 0],
        cursor: {
          points: { size: 6 },
          sync: { key: SYNC_KEY },
          drag: { x: true, y: false, setScale: false },
        },
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
            // uPlot draws the points only while few are in view (a handful of buckets: a line
            // through one point would be invisible).
            points: { size: 5 },
            value: legendValue((v) => formatDisplay(metric, v)),
          })),
        ],
        plugins: [zoomPlugin(onZoom), this.markers.plugin(), scaleReporter(container)],
      },
      [[], ...series.map(() => [])],
      container,
    );
    this.observer = autoResize(this.plot, container);
  }

  // The page's range; before the page has one, what the data spans.
  xRange(min, max) {
    if (this.window) return this.window;
    if (min === null || max === null) return [0, 1];
    return min < max ? [min, max] : [min - 60_000, max];
  }

  setWindow(from, to) {
    if (this.window && this.window[0] === from && this.window[1] === to) return;
    this.window = [from, to];
    this.scheduleRender();
  }

  // History from REST: one {ts, value, gaps} per series, values in base units. With `keepLive`
  // (the range follows the stream), live samples newer than the history are kept: the stream
  // may have started first.
  setHistory(list, { keepLive = false } = {}) {
    this.store = list.map((s, k) => {
      const ts = [...(s?.ts ?? [])];
      const value = (s?.value ?? []).map((v) => toDisplay(this.metric, v));
      const gaps = [...(s?.gaps ?? [])];
      const old = this.store[k];
      const end = ts.length ? ts[ts.length - 1] : -Infinity;
      if (keepLive) {
        for (let i = 0; i < old.ts.length; i += 1) {
          if (old.ts[i] > end) {
            ts.push(old.ts[i]);
            value.push(old.value[i]);
          }
        }
        gaps.push(...old.gaps.filter(([from]) => from >= end));
      }
      return { ts, value, gaps };
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

  setMarkers(markers) {
    this.markers.set(markers, this.plot);
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
    if (this.window) {
      const cutoff = this.window[0];
      for (const s of this.store) {
        // Drop what slid out of the range, but one point: the line enters from the edge.
        let drop = 0;
        while (drop < s.ts.length - 1 && s.ts[drop + 1] < cutoff) drop += 1;
        if (drop > 0) {
          s.ts.splice(0, drop);
          s.value.splice(0, drop);
        }
        s.gaps = s.gaps.filter(([, to]) => to >= cutoff);
      }
    }
    const data = alignSeries(this.store);
    this.container.dataset.points = String(data[0].length);
    this.plot.setData(data);
    refreshLegend(this.plot);
  }

  destroy() {
    this.observer.disconnect();
    this.plot.destroy();
  }
}

// The x range a chart shows, on its container (`data-x-min`, `data-x-max`, epoch ms): the
// tests, and anyone curious, can tell which range a chart shows without reading its pixels.
function scaleReporter(container) {
  return {
    hooks: {
      setScale: [
        (u, key) => {
          if (key !== "x" || u.scales.x.min === null) return;
          container.dataset.xMin = String(Math.round(u.scales.x.min));
          container.dataset.xMax = String(Math.round(u.scales.x.max));
        },
      ],
    },
  };
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
  constructor(container, { metric, onZoom }) {
    this.container = container;
    this.metric = metric;
    this.bucketMs = 60_000;
    this.partial = [];
    this.window = null;
    this.markers = new MarkerLayer(container);
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
        cursor: {
          points: { show: false },
          sync: { key: SYNC_KEY },
          drag: { x: true, y: false, setScale: false },
        },
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
        plugins: [zoomPlugin(onZoom), this.markers.plugin(), scaleReporter(container)],
      },
      [[], [], [], [], []],
      container,
    );
    this.observer = autoResize(this.plot, container, candleHeight);
  }

  // The page's range (else what the data spans), with half a bucket of margin each side, so
  // the end candles are whole; and room for at least MIN_BUCKETS, so two candles do not
  // stretch into slabs across the chart.
  xRange(min, max) {
    if (this.window) [min, max] = this.window;
    if (min === null || max === null) return [0, 1];
    const half = this.bucketMs / 2;
    return [Math.min(min, max - (MIN_BUCKETS - 1) * this.bucketMs) - half, max + half];
  }

  setWindow(from, to) {
    if (this.window && this.window[0] === from && this.window[1] === to) return;
    this.window = [from, to];
    if (this.starts) this.redraw();
  }

  setMarkers(markers) {
    this.markers.set(markers, this.plot);
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
