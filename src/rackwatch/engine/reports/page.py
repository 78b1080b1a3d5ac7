"""A report as one self-contained HTML file: inline CSS (with print styles: A4, no split
tables rows or charts), charts as inline SVG (charts.py), no script, nothing loaded from
anywhere: it opens the same from the archive, a mail attachment or an air-gapped laptop.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from rackwatch.engine.reports import charts
from rackwatch.engine.reports.content import EventRow, Report

DASH = "\u2014"

CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
  --band: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.meta, p.note, .muted { color: var(--muted); }
p.meta { margin: 0 0 16px; }
dl.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr));
  gap: 10px; margin: 0; }
dl.cards div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  background: var(--band); }
dl.cards dt { color: var(--muted); font-size: 12px; }
dl.cards dd { margin: 2px 0 0; font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
dl.cards dd small { display: block; font-weight: 400; font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left;
  vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
svg.chart { display: block; width: 100%; height: auto; margin: 6px 0 10px; }
svg.chart * { stroke-linejoin: round; stroke-linecap: butt; }
ul.notes { color: var(--muted); padding-left: 18px; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  h2 { break-after: avoid; }
  svg.chart, dl.cards div, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  dl.cards { grid-template-columns: repeat(4, 1fr); }
}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float | int | None, unit: str) -> str:
    """A value in its unit, for people (None: a dash)."""
    if value is None:
        return DASH
    v = float(value)
    if unit == "ratio":
        return f"{v * 100:.1f} %"
    if unit == "celsius":
        return f"{v:.1f} °C"
    if unit == "kWh":
        return f"{v:,.1f} kWh"
    if unit in ("bytes", "bytes_per_second", "watts"):
        divisor, label = charts.scale(unit, [v])
        return f"{v / divisor:,.2f} {label}".strip()
    if unit == "hours":
        return f"{v:,.1f} h"
    return f"{v:,.4g}"


def table(headers: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]]) -> str:
    """A table; each header says whether its column is numeric (right-aligned)."""
    head = "".join(f"<th{' class=num' if num else ''}>{e(h)}</th>" for h, num in headers)
    body = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if num else ''}>{cell}</td>"
            for cell, (_, num) in zip(row, headers, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return '<p class="note">Nothing in this period.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def card(label: str, value: str, sub: str = "") -> str:
    small = f"<small>{e(sub)}</small>" if sub else ""
    return f"<div><dt>{e(label)}</dt><dd>{e(value)}{small}</dd></div>"


def summary(r: Report) -> str:
    cpu, net, gpu, en = r.cpu, r.network, r.gpu, r.energy
    busiest_hour = (
        (cpu.busiest_hour.label, f"CPU {fmt(cpu.busiest_hour.cpu_utilization_ratio, 'ratio')}")
        if cpu.busiest_hour
        else (DASH, "")
    )
    cards = [
        card("Average CPU", fmt(cpu.average, "ratio")),
        card("Busiest hour (CPU)", *busiest_hour),
        card(
            "Busiest server",
            cpu.busiest_server.entity if cpu.busiest_server else DASH,
            fmt(cpu.busiest_server.value, "ratio") if cpu.busiest_server else "",
        ),
        card(
            "Idlest server",
            cpu.idlest_server.entity if cpu.idlest_server else DASH,
            fmt(cpu.idlest_server.value, "ratio") if cpu.idlest_server else "",
        ),
        card(
            "Memory average",
            fmt(r.memory.average_utilization_ratio, "ratio"),
            f"{fmt(r.memory.average_used_bytes, 'bytes')} per machine",
        ),
        card(
            "Disk used (fleet, average)",
            fmt(r.disk.average_used_bytes, "bytes"),
            fmt(r.disk.average_utilization_ratio, "ratio"),
        ),
        card("Network up (sent)", fmt(net.up_bytes, "bytes")),
        card("Network down (received)", fmt(net.down_bytes, "bytes")),
        card(
            "GPU idle rate (> 8 GiB free)",
            fmt(gpu.gpu_idle_rate, "ratio"),
            f"under 10 % memory used: {fmt(gpu.gpu_low_memory_rate, 'ratio')}",
        ),
        card(
            "Energy",
            fmt(en.energy_kwh, "kWh"),
            DASH if en.cost is None else f"cost {en.cost:,.2f} {en.currency or ''}".strip(),
        ),
        card(
            "Alerts · incidents · faults",
            f"{r.events.n_alerts} · {r.events.n_incidents} · {r.events.n_faults}",
        ),
    ]
    if cpu.busiest_day is not None:
        cards.insert(
            2, card("Busiest day (CPU)", cpu.busiest_day.start, fmt(cpu.busiest_day.value, "ratio"))
        )
    return f'<dl class="cards">{"".join(cards)}</dl>'


def metrics_table(r: Report) -> str:
    headers = [
        ("Metric", False),
        ("Scope", False),
        ("Average", True),
        ("Median", True),
        ("Min", True),
        ("Max", True),
        ("Series", True),
    ]
    rows = [
        (
            f"{e(m.title)}<br><span class=muted>{e(m.metric)}</span>",
            e(m.scope),
            e(fmt(m.average, m.unit)),
            e(fmt(m.median, m.unit)),
            e(fmt(m.min, m.unit)),
            e(fmt(m.max, m.unit)),
            str(m.n_series),
        )
        for m in r.metrics
    ]
    return table(headers, rows)


def cpu_part(r: Report) -> str:
    cpu = r.cpu
    values = {h.hour: h.value for h in cpu.by_hour}
    parts = []
    chart = charts.bar_chart(
        "Average CPU by hour of the day",
        [f"{h:02d}" for h in range(24)],
        [values.get(h) for h in range(24)],
        "ratio",
        "cpu-hours",
    )
    if chart:
        parts.append(chart)
    if cpu.by_day:
        chart = charts.bar_chart(
            "Average CPU by day",
            [d.start[5:] for d in cpu.by_day],
            [d.value for d in cpu.by_day],
            "ratio",
            "cpu-days",
        )
        if chart:
            parts.append(chart)
    return "".join(parts) or '<p class="note">No CPU data in this period.</p>'


def disk_part(r: Report) -> str:
    disk = r.disk
    labels = [s.start[11:16] if disk.by == "hour" else s.start[5:10] for s in disk.slots]
    if len(disk.slots) > 24 and disk.by == "hour":  # a week by hour: day and hour
        labels = [s.start[5:16].replace("T", " ") for s in disk.slots]
    chart = charts.bar_chart(
        f"Average disk space used, by {disk.by}",
        labels,
        [s.used_bytes for s in disk.slots],
        "bytes",
        "disk",
    )
    rows = [
        (
            e(s.start.replace("T", " ")),
            e(fmt(s.used_bytes, "bytes")),
            e(fmt(s.utilization_ratio, "ratio")),
        )
        for s in disk.slots
    ]
    listing = table([(disk.by.capitalize(), False), ("Used", True), ("Utilisation", True)], rows)
    return (chart or "") + listing


def servers_table(r: Report) -> str:
    headers = [
        ("Server", False),
        ("CPU avg", True),
        ("CPU max", True),
        ("Memory", True),
        ("Disk used", True),
        ("Net up", True),
        ("Net down", True),
        ("Power", True),
        ("Energy", True),
        ("GPUs", True),
        ("GPU idle", True),
        ("GPU < 10 % mem", True),
    ]
    rows = [
        (
            e(s.entity),
            e(fmt(s.cpu_average, "ratio")),
            e(fmt(s.cpu_max, "ratio")),
            e(fmt(s.memory_utilization_ratio, "ratio")),
            e(fmt(s.disk_used_bytes, "bytes")),
            e(fmt(s.network_up_bytes, "bytes")),
            e(fmt(s.network_down_bytes, "bytes")),
            e(fmt(s.power_watts, "watts")),
            e(fmt(s.energy_kwh, "kWh")),
            str(s.n_gpus),
            e(fmt(s.gpu_idle_rate, "ratio")),
            e(fmt(s.gpu_low_memory_rate, "ratio")),
        )
        for s in r.servers
    ]
    return table(headers, rows)


def gpu_part(r: Report) -> str:
    gpu = r.gpu
    if not gpu.n_cards:
        return '<p class="note">No GPU reported in this period.</p>'
    servers = table(
        [
            ("Server", False),
            ("Cards", True),
            ("Idle (> 8 GiB free)", True),
            ("Under 10 % memory", True),
        ],
        [
            (
                e(s.entity),
                str(s.n_cards),
                e(fmt(s.gpu_idle_rate, "ratio")),
                e(fmt(s.gpu_low_memory_rate, "ratio")),
            )
            for s in gpu.servers
        ],
    )
    cards = table(
        [
            ("Card", False),
            ("Utilisation", True),
            ("Memory used", True),
            ("Idle (> 8 GiB free)", True),
            ("Under 10 % memory", True),
            ("Observed", True),
        ],
        [
            (
                e(c.entity),
                e(fmt(c.utilization_ratio, "ratio")),
                e(fmt(c.memory_utilization_ratio, "ratio")),
                e(fmt(c.gpu_idle_rate, "ratio")),
                e(fmt(c.gpu_low_memory_rate, "ratio")),
                e(fmt(c.observed_hours, "hours")),
            )
            for c in gpu.cards
        ],
    )
    return f"<h3>By server</h3>{servers}<h3>By card</h3>{cards}"


def _duration(row: EventRow) -> str:
    if row.duration_s is None:
        return "open"
    return str(dt.timedelta(seconds=round(row.duration_s)))


def events_part(r: Report) -> str:
    def listing(rows: list[EventRow], what: str) -> str:
        return table(
            [
                ("Start", False),
                ("End", False),
                ("Duration", True),
                ("Entity", False),
                (what, False),
                ("Severity", False),
                ("Detail", False),
            ],
            [
                (
                    e(x.start.replace("T", " ")),
                    e((x.end or "open").replace("T", " ")),
                    e(_duration(x)),
                    e(x.entity),
                    e(x.what),
                    e(x.severity),
                    e(x.detail),
                )
                for x in rows
            ],
        )

    ev = r.events
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in ev.notes)
    return (
        f"<h3>Alerts ({ev.n_alerts})</h3>{listing(ev.alerts, 'Rule')}"
        f"<h3>Incidents ({ev.n_incidents})</h3>{listing(ev.incidents, 'Cause')}"
        f"<h3>Faults ({ev.n_faults})</h3>{listing(ev.faults, 'Fault')}{notes}"
    )


def energy_part(r: Report) -> str:
    en = r.energy
    rows = [
        ("Energy", e(fmt(en.energy_kwh, "kWh"))),
        ("Machines' own energy (power_watts)", e(fmt(en.it_energy_kwh, "kWh"))),
        ("Cost", DASH if en.cost is None else e(f"{en.cost:,.2f} {en.currency or ''}")),
        ("PUE", DASH if en.pue is None else e(f"{en.pue:.2f}")),
    ]
    note = f'<p class="note">{e(en.note)}</p>' if en.note else ""
    return table([("", False), ("", True)], rows) + note


def render_html(report: Report) -> bytes:
    r = report
    zone = ZoneInfo(r.period.timezone)
    p = r.period
    trend_svgs = "".join(charts.trend_charts(r.trends, zone))
    sections = [
        ("Summary", summary(r)),
        ("Metrics", metrics_table(r)),
        ("Trends", trend_svgs or '<p class="note">No data in this period.</p>'),
        ("CPU: the busiest period", cpu_part(r)),
        (f"Disk space by {r.disk.by}", disk_part(r)),
        ("Servers", servers_table(r)),
        ("GPU idle rate", gpu_part(r)),
        ("Alerts, incidents and faults", events_part(r)),
        ("Energy and cost", energy_part(r)),
        (
            "How these figures are made",
            "<ul class=notes>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>",
        ),
    ]
    body = "".join(
        f"<section><h2>{e(title)}</h2>{content}</section>" for title, content in sections
    )
    meta = (
        f"{e(p.start.replace('T', ' '))} to {e(p.end.replace('T', ' '))} ({e(p.timezone)}) · "
        f"{r.n_machines} machines, {r.n_gpus} GPUs · from the {e(r.source.tier)} tier · "
        f"generated {e(r.generated_at.replace('T', ' '))}"
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<link rel="icon" href="data:,">
<title>rackwatch · {e(r.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{e(r.title)}</h1><p class="meta">{meta}</p></header>
<main>{body}</main>
</body>
</html>
"""
    return page.encode("utf-8")
