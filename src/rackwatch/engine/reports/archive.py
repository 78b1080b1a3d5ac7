"""The report archive: `<data_dir>/reports/<period>/<period>-<first day>.<format>`, e.g.
`reports/week/week-2026-03-02.html`.

Each file is written under a temporary name and renamed, so a reader sees a whole report or
none; a report made again replaces the old one. Files are private (0600, like the rest of
the data directory). Names are checked against one pattern before any path is built from
them, so a name from a URL can never leave the archive.

>>> import tempfile, datetime as dt
>>> from zoneinfo import ZoneInfo
>>> from rackwatch.engine.reports.periods import period_of
>>> archive = ReportArchive(Path(tempfile.mkdtemp()) / "reports")
>>> entry = archive.write(period_of("day", dt.date(2026, 3, 5), ZoneInfo("UTC")), {"json": b"{}"})
>>> entry.name, entry.sizes, archive.file("day-2026-03-05.json").name
('day-2026-03-05', {'json': 2}, 'day-2026-03-05.json')
>>> archive.file("../secrets.json")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rackwatch.engine.reports.periods.ReportError: not a report file name: '../secrets.json' ...
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rackwatch.engine.reports.formats import FORMATS
from rackwatch.engine.reports.periods import KINDS, Period, PeriodKind, ReportError

FILE_NAME = re.compile(r"^(day|week|month)-(\d{4}-\d{2}-\d{2})\.(html|json|csv)$", re.ASCII)
STEM = re.compile(r"^(day|week|month)-(\d{4}-\d{2}-\d{2})$", re.ASCII)


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived report: its period kind, first day, and the files it has."""

    kind: str
    date: str
    sizes: dict[str, int]
    """Bytes per format held."""
    created_ms: int
    """When its newest file was written (epoch ms)."""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.date}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "period": self.kind,
            "date": self.date,
            "formats": [f for f in FORMATS if f in self.sizes],
            "files": {
                f: {"name": f"{self.name}.{f}", "size": self.sizes[f]}
                for f in FORMATS
                if f in self.sizes
            },
            "size": sum(self.sizes.values()),
            "created_ms": self.created_ms,
            "created": dt.datetime.fromtimestamp(self.created_ms / 1000, dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }


class ReportArchive:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _dir(self, kind: str) -> Path:
        return self.root / kind

    def path(self, period: Period, fmt: str) -> Path:
        return self._dir(period.kind) / f"{period.name}.{fmt}"

    def write(self, period: Period, files: dict[str, bytes]) -> ArchiveEntry:
        """Write (or replace) the period's files, each atomically; the entry as it is now."""
        directory = self._dir(period.kind)
        with self._lock:
            for part in (self.root, directory):
                part.mkdir(mode=0o700, exist_ok=True)
            for fmt, body in files.items():
                if fmt not in FORMATS:
                    raise ReportError(f"unknown report format {fmt!r}")
                _write_atomically(self.path(period, fmt), body)
        found = self.entry(period.name)
        assert found is not None
        return found

    def entry(self, name: str) -> ArchiveEntry | None:
        """The archived report `name` (`day-2026-03-05`), None when none is archived."""
        match = STEM.match(name)
        if match is None:
            return None
        kind, date = match.groups()
        sizes, created = {}, 0
        for fmt in FORMATS:
            try:
                info = (self._dir(kind) / f"{name}.{fmt}").stat()
            except OSError:
                continue
            sizes[fmt] = info.st_size
            created = max(created, info.st_mtime_ns // 1_000_000)
        return ArchiveEntry(kind, date, sizes, created) if sizes else None

    def has(self, period: Period) -> bool:
        return self.entry(period.name) is not None

    def entries(self, kind: str | None = None) -> list[ArchiveEntry]:
        """Every archived report (of `kind`), newest period first (a month before the
        weeks and days that start on the same day)."""
        names: set[str] = set()
        for k in [kind] if kind is not None else [str(x) for x in KINDS]:
            try:
                listed = os.listdir(self._dir(k))
            except OSError:
                continue
            for file_name in listed:
                match = FILE_NAME.match(file_name)
                if match is not None and match.group(1) == k:
                    names.add(f"{match.group(1)}-{match.group(2)}")
        found = [e for e in (self.entry(n) for n in names) if e is not None]
        rank = {str(k): i for i, k in enumerate(reversed(KINDS))}
        return sorted(found, key=lambda e: (e.date, -rank[e.kind]), reverse=True)

    def file(self, file_name: str) -> Path:
        """The path of an archived file named `file_name` (ReportError for a name that is
        not one; the file may not exist)."""
        match = FILE_NAME.match(file_name)
        if match is None:
            raise ReportError(
                f"not a report file name: {file_name[:40]!r} (e.g. day-2026-03-05.html)"
            )
        return self._dir(match.group(1)) / file_name

    def prune(self, kind: PeriodKind, keep: int, spare: str = "") -> list[str]:
        """Delete all but the newest `keep` reports of `kind` (never `spare`, the one just
        made); the names deleted."""
        doomed = [e.name for e in self.entries(str(kind))][keep:]
        doomed = [name for name in doomed if name != spare]
        with self._lock:
            for name in doomed:
                for fmt in FORMATS:
                    with contextlib.suppress(FileNotFoundError):
                        (self._dir(str(kind)) / f"{name}.{fmt}").unlink()
        return doomed


def _write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
