// Friendly units for the dashboard. Storage keeps base units (ratio 0..1, watts, °C); only this
// module turns them into what people read, so every page shows a metric the same way.

const DASH = "—";

// Labels for the metrics in docs/METRICS.md. An unknown metric still displays, by its name.
const LABELS = {
  cpu_temperature_celsius: "CPU temperature",
  inlet_temperature_celsius: "Inlet temperature",
  chassis_temperature_celsius: "Chassis temperature",
  power_watts: "Power",
  airflow_cfm: "Airflow",
  cpu_utilization_ratio: "CPU utilisation",
  disk_ok: "Disk",
  fan_level: "Fan level",
  fan_rpm: "Fan speed",
  fan_power_watts: "Fan power",
  pdu_power_watts: "PDU power",
  pdu_capacity_watts: "PDU capacity",
  crac_supply_temperature_celsius: "CRAC supply",
  crac_power_watts: "Cooling power",
  it_power_watts: "IT power",
  facility_power_watts: "Facility power",
  pue_ratio: "PUE",
  cpu_frequency_hertz: "CPU frequency",
  load_average_1m: "Load (1 min)",
  memory_used_bytes: "Memory used",
  memory_utilization_ratio: "Memory in use",
  swap_utilization_ratio: "Swap in use",
  uptime_seconds: "Uptime",
  disk_utilization_ratio: "Disk space in use",
  network_receive_bytes_per_second: "Network in",
  network_transmit_bytes_per_second: "Network out",
  gpu_utilization_ratio: "GPU utilisation",
  gpu_memory_used_bytes: "GPU memory used",
  gpu_temperature_celsius: "GPU temperature",
  gpu_power_watts: "GPU power",
};

export const FAN_LEVELS = ["off", "low", "medium", "high"];

// Fixed-locale formatters: the page reads the same on every machine (and in the tests).
const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fixedFormats = new Map();
function fixed(digits) {
  if (!fixedFormats.has(digits)) {
    const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
    fixedFormats.set(digits, new Intl.NumberFormat("en-US", options));
  }
  return fixedFormats.get(digits);
}
const fixed1 = fixed(1);
const fixed2 = fixed(2);

export function metricLabel(metric) {
  return LABELS[metric] ?? metric.replaceAll("_", " ");
}

// PUE is stored as a ratio but is read as a plain factor (1.45), never as a percentage.
function isPercent(metric) {
  return metric.endsWith("_ratio") && metric !== "pue_ratio";
}

export function isMissing(value) {
  return value === null || value === undefined || Number.isNaN(value);
}

export function formatPercent(ratio) {
  return isMissing(ratio) ? DASH : `${fixed1.format(ratio * 100)} %`;
}

export function formatWatts(watts) {
  if (isMissing(watts)) return DASH;
  const abs = Math.abs(watts);
  if (abs >= 1e6) return `${fixed2.format(watts / 1e6)} MW`;
  if (abs >= 1e3) return `${fixed2.format(watts / 1e3)} kW`;
  return `${abs < 10 ? fixed1.format(watts) : int.format(watts)} W`;
}

// The value with its unit, as a person reads it; "—" when the sensor answered nothing.
export function formatValue(metric, value) {
  if (isMissing(value)) return DASH;
  if (metric === "fan_level") return FAN_LEVELS[Math.round(value)] ?? String(value);
  if (metric === "disk_ok") return value >= 0.5 ? "OK" : "failed";
  if (metric === "pue_ratio") return fixed2.format(value);
  if (isPercent(metric)) return formatPercent(value);
  if (metric.endsWith("_celsius")) return `${fixed1.format(value)} °C`;
  if (metric.endsWith("_watts")) return formatWatts(value);
  if (metric.endsWith("_cfm")) return `${fixed1.format(value)} CFM`;
  if (metric.endsWith("_rpm")) return `${int.format(value)} rpm`;
  if (metric.endsWith("_bytes")) return formatBytes(value);
  if (metric.endsWith("_bytes_per_second")) return formatRate(value);
  if (metric.endsWith("_hertz")) return formatHertz(value);
  if (metric === "uptime_seconds") return formatDuration(value);
  if (metric.endsWith("_count")) return int.format(value);
  return Math.abs(value) >= 100 ? int.format(value) : fixed2.format(value);
}

// Sizes 1024-based, as `free -h` and `df -h` show them; rates 1000-based, as link speeds are.
const BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
const RATE = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];

// The power of `base` a value reads best in (0: the unit itself).
function scaleOf(value, base, n) {
  let i = 0;
  for (let v = Math.abs(value); v >= base && i < n - 1; v /= base) i += 1;
  return i;
}

function scaled(value, i, base) {
  const v = value / base ** i;
  return i === 0 || Math.abs(v) >= 100 ? int.format(v) : fixed1.format(v);
}

// 48.0 GiB, 512.0 MiB, 900 B.
export function formatBytes(bytes) {
  if (isMissing(bytes)) return DASH;
  const i = scaleOf(bytes, 1024, BINARY.length);
  return `${scaled(bytes, i, 1024)} ${BINARY[i]}`;
}

// "48.0 / 128.0 GiB": both in the unit of the total, so they compare at a glance.
export function formatBytesOf(used, total) {
  if (isMissing(total)) return formatBytes(used);
  const i = scaleOf(total, 1024, BINARY.length);
  const shown = isMissing(used) ? DASH : scaled(used, i, 1024);
  return `${shown} / ${scaled(total, i, 1024)} ${BINARY[i]}`;
}

export function formatRate(bytesPerSecond) {
  if (isMissing(bytesPerSecond)) return DASH;
  const i = scaleOf(bytesPerSecond, 1000, RATE.length);
  return `${scaled(bytesPerSecond, i, 1000)} ${RATE[i]}`;
}

export function formatHertz(hertz) {
  if (isMissing(hertz)) return DASH;
  return hertz >= 1e9 ? `${fixed2.format(hertz / 1e9)} GHz` : `${int.format(hertz / 1e6)} MHz`;
}

// Charts plot display units, so axis ticks land on round percentages rather than 0.05 steps.
export function toDisplay(metric, value) {
  if (isMissing(value)) return value === undefined ? undefined : null;
  return isPercent(metric) ? value * 100 : value;
}

// Axis tick text for one axis: as many decimals as the tick spacing needs (so 12.5 % and 13 %
// never both read "13 %"), and one unit scale for the whole axis (not "900 W" beside "1.1 kW").
export function formatTicks(metric, splits, incr) {
  if (metric === "fan_level") return splits.map((v) => FAN_LEVELS[Math.round(v)] ?? "");
  const top = Math.max(...splits.map((v) => Math.abs(v)));
  let scale = 1;
  let unit = "";
  if (isPercent(metric)) unit = " %";
  else if (metric.endsWith("_celsius")) unit = " °C";
  else if (metric.endsWith("_cfm")) unit = " CFM";
  else if (metric.endsWith("_watts")) [scale, unit] = top >= 1000 ? [1000, " kW"] : [1, " W"];
  else if (metric.endsWith("_rpm") && top >= 1000) [scale, unit] = [1000, "k"];
  else if (metric.endsWith("_hertz")) [scale, unit] = [1e9, " GHz"];
  else if (metric.endsWith("_bytes")) {
    const i = scaleOf(top, 1024, BINARY.length);
    [scale, unit] = [1024 ** i, ` ${BINARY[i]}`];
  } else if (metric.endsWith("_bytes_per_second")) {
    const i = scaleOf(top, 1000, RATE.length);
    [scale, unit] = [1000 ** i, ` ${RATE[i]}`];
  }
  const digits = decimalsFor((incr || 1) / scale);
  return splits.map((v) => (isMissing(v) ? "" : `${fixed(digits).format(v / scale)}${unit}`));
}

function decimalsFor(step) {
  return Math.min(3, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
}

// Display value (already through toDisplay) back to text, for chart legends.
export function formatDisplay(metric, value) {
  if (isMissing(value)) return DASH;
  return formatValue(metric, isPercent(metric) ? value / 100 : value);
}

const timeFmt = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const dateTimeFmt = new Intl.DateTimeFormat("en-GB", {
  day: "2-digit",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

// Local wall-clock style; the twin's clock may run faster than real time, so say "at", not "ago".
export function formatTime(ms) {
  return isMissing(ms) ? DASH : timeFmt.format(new Date(ms));
}

export function formatDateTime(ms) {
  return isMissing(ms) ? DASH : dateTimeFmt.format(new Date(ms));
}

const hmFmt = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});
const dayFmt = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });

// Time-axis ticks, 24-hour: seconds only when ticks are closer than a minute; the date where a
// day starts or when ticks are a day apart.
export function formatTimeTicks(splits, incr) {
  return splits.map((ms) => {
    const d = new Date(ms);
    if (incr >= 86_400_000) return dayFmt.format(d);
    if (incr < 60_000) return timeFmt.format(d);
    const hm = hmFmt.format(d);
    return d.getHours() === 0 && d.getMinutes() === 0 ? `${dayFmt.format(d)}\n${hm}` : hm;
  });
}

// "5 min ago", "3 d 4 h ago": how long since an instant of the wall clock.
export function formatAgo(ms) {
  return isMissing(ms) ? DASH : `${formatDuration(Math.max(0, ms) / 1000)} ago`;
}

export function formatDuration(seconds) {
  if (isMissing(seconds)) return DASH;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  return h < 48
    ? `${h} h ${Math.floor((s % 3600) / 60)} min`
    : `${Math.floor(h / 24)} d ${h % 24} h`;
}

// Temperature colour scale for CPU temperatures. Light tones, so dark text on top of any of them
// keeps a contrast ratio above 6:1; the legend on the overview is drawn from the same stops.
// Orange and red sit at the default CPU temperature rule's warning and critical levels (80 and
// 90 °C, docs/ALERTS.md), which the terminal of `rackwatch run` uses too.
export const TEMP_STOPS = [
  [30, [124, 196, 245]], // cool: blue
  [45, [132, 216, 150]], // normal: green
  [60, [240, 222, 110]], // warm: yellow
  [80, [248, 168, 88]], // hot (warning): orange
  [90, [244, 109, 90]], // critical: red
];

export function tempColor(celsius) {
  if (isMissing(celsius)) return null;
  const first = TEMP_STOPS[0];
  const last = TEMP_STOPS[TEMP_STOPS.length - 1];
  if (celsius <= first[0]) return rgb(first[1]);
  if (celsius >= last[0]) return rgb(last[1]);
  for (let i = 1; i < TEMP_STOPS.length; i += 1) {
    const [t1, c1] = TEMP_STOPS[i];
    if (celsius <= t1) {
      const [t0, c0] = TEMP_STOPS[i - 1];
      const f = (celsius - t0) / (t1 - t0);
      return rgb(c0.map((v, k) => v + (c1[k] - v) * f));
    }
  }
  return rgb(last[1]);
}

export function tempGradientCss() {
  const lo = TEMP_STOPS[0][0];
  const span = TEMP_STOPS[TEMP_STOPS.length - 1][0] - lo;
  const parts = TEMP_STOPS.map(([t, c]) => `${rgb(c)} ${(((t - lo) / span) * 100).toFixed(0)}%`);
  return `linear-gradient(to right, ${parts.join(", ")})`;
}

function rgb(c) {
  return `rgb(${c.map((v) => Math.round(v)).join(", ")})`;
}

// Event severity arrives as a number (0 info, 1 warning, 2 critical) or already as a name.
export function severityName(severity) {
  if (typeof severity === "string") return severity.toLowerCase();
  return ["info", "warning", "critical"][severity] ?? "info";
}
