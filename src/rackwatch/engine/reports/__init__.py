"""Daily, weekly and monthly reports of the room (seed 004; docs/REPORTS.md).

`periods` (day/week/month bounds in the site's time zone), `scope` (which series: machines,
their disks, NICs and GPU cards), `stats` and `medians` (SQL over the 1-minute or 1-hour
tier), `compose` (the sections), `events` and `energy` (the period's alerts, incidents,
faults, and its energy and cost), `content` (the report as data; JSON), `tabular` (CSV),
`page` and `charts` (self-contained HTML with inline SVG), `archive` (the files under
`<data_dir>/reports`), `service` (`Reporter`: make, render, archive) and `schedule` (the
reports `rackwatch run` makes at 00:05).
"""

from rackwatch.engine.reports.archive import ArchiveEntry, ReportArchive
from rackwatch.engine.reports.build import ReportCancelled, build_report
from rackwatch.engine.reports.content import Report
from rackwatch.engine.reports.energy import EnergyOptions, account_energy
from rackwatch.engine.reports.formats import FORMATS, MEDIA_TYPES, render
from rackwatch.engine.reports.periods import (
    KINDS,
    Period,
    PeriodKind,
    ReportError,
    parse_day,
    parse_kind,
    period_of,
    zone_of,
)
from rackwatch.engine.reports.schedule import ReportSchedule
from rackwatch.engine.reports.service import Generated, Reporter

__all__ = [
    "FORMATS",
    "KINDS",
    "MEDIA_TYPES",
    "ArchiveEntry",
    "EnergyOptions",
    "Generated",
    "Period",
    "PeriodKind",
    "Report",
    "ReportArchive",
    "ReportCancelled",
    "ReportError",
    "ReportSchedule",
    "Reporter",
    "account_energy",
    "build_report",
    "parse_day",
    "parse_kind",
    "period_of",
    "render",
    "zone_of",
]
