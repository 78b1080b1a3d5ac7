"""The report archive (docs/REPORTS.md): `GET /reports` lists it, `GET /reports/{name}` is one
file, `POST /reports?period=&date=` makes a period's report now.

Making a report reads a period of the store and draws its charts (seconds of CPU on a large
room) and writes files: it takes a `control` token, and runs in a worker thread, one
report at a time (`Reporter`). A file's name is checked against the archive's pattern
before any path is built from it. The HTML is served with a Content-Security-Policy that
lets it load nothing, as it needs nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from rackwatch.api.auth import READ_ACCESS, ControlAccess
from rackwatch.api.deps import get_ctx
from rackwatch.api.params import ParamError
from rackwatch.api.schemas import ErrorOut
from rackwatch.engine.reports import (
    MEDIA_TYPES,
    ArchiveEntry,
    Reporter,
    ReportError,
    parse_day,
    parse_kind,
)
from rackwatch.engine.reports.build import ReportCancelled
from rackwatch.engine.reports.formats import check_format

router = APIRouter(tags=["reports"])
PREFIX = "/api/v1/reports"
ONLY_ITSELF = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""What a report page may load: its own inline style, nothing else."""


def get_reporter(conn: HTTPConnection) -> Reporter:
    reporter = get_ctx(conn).reports
    if reporter is None:
        raise HTTPException(503, "reports are not made on this server (no report archive)")
    return reporter


ReporterDep = Annotated[Reporter, Depends(get_reporter)]


def entry_out(entry: ArchiveEntry) -> dict[str, Any]:
    out = entry.to_dict()
    for file in out["files"].values():
        file["url"] = f"{PREFIX}/{file['name']}"
    return out


@router.get("/reports", dependencies=[READ_ACCESS], responses={503: {"model": ErrorOut}})
async def list_reports(
    reporter: ReporterDep,
    period: Annotated[
        str | None, Query(description="`day`, `week` or `month` (default: every kind).")
    ] = None,
) -> dict[str, Any]:
    """The archived reports, newest period first: `{"timezone", "formats", "reports":
    [{"name", "period", "date", "formats", "files": {format: {"name", "size", "url"}},
    "size", "created_ms", "created"}]}`."""
    try:
        kind = None if period is None else str(parse_kind(period))
    except ReportError as exc:
        raise ParamError(f"period: {exc}") from None
    entries = await run_in_threadpool(reporter.archive.entries, kind)
    return {
        "timezone": reporter.zone.key,
        "formats": list(reporter.formats),
        "reports": [entry_out(e) for e in entries],
    }


@router.get(
    "/reports/{name}",
    dependencies=[READ_ACCESS],
    response_class=FileResponse,
    responses={
        200: {"content": {m.split(";")[0]: {} for m in MEDIA_TYPES.values()}},
        404: {"model": ErrorOut},
    },
)
async def get_report(reporter: ReporterDep, name: str) -> FileResponse:
    """One archived file, `day-2026-03-05.html` (or `.json`, `.csv`), in its media type."""
    try:
        path = reporter.archive.file(name)
    except ReportError as exc:
        raise HTTPException(404, f"{exc}: see GET {PREFIX} for the archive") from None
    if not await run_in_threadpool(path.is_file):
        raise HTTPException(404, f"no report file {name!r}: see GET {PREFIX} for the archive")
    fmt = path.suffix.removeprefix(".")
    headers = {"X-Content-Type-Options": "nosniff"}
    if fmt == "html":
        headers["Content-Security-Policy"] = ONLY_ITSELF
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[fmt],
        headers=headers,
        content_disposition_type="inline" if fmt == "html" else "attachment",
        filename=path.name,
    )


@router.post(
    "/reports",
    status_code=201,
    responses={400: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def make_report(
    _caller: ControlAccess,
    reporter: ReporterDep,
    period: Annotated[str, Query(description="`day`, `week` or `month`.")],
    date: Annotated[
        str | None,
        Query(
            description="Any day of the period, YYYY-MM-DD (in the site's time zone) "
            "\\[default: the last complete period].",
            max_length=64,
        ),
    ] = None,
    formats: Annotated[
        list[str] | None,
        Query(
            alias="format",
            description="Also write this format (`html`, `json`, `csv`; repeatable) besides "
            "`[reports] formats`.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Make a period's report now and archive it (replacing one made before); its entry
    and how long it took: `{"report": {...as in GET /reports}, "seconds"}`."""
    try:
        kind = parse_kind(period)
    except ReportError as exc:
        raise ParamError(f"period: {exc}") from None
    try:
        day = None if date is None else parse_day(date)
        chosen = reporter.period(kind, day)
    except ReportError as exc:
        raise ParamError(f"date: {exc}") from None
    try:
        extra = [check_format(f) for f in formats or ()]
    except ReportError as exc:
        raise ParamError(f"format: {exc}") from None
    try:
        made = await run_in_threadpool(partial(reporter.generate, chosen, extra_formats=extra))
    except ReportCancelled as exc:
        raise HTTPException(503, f"{exc}: the server is stopping") from None
    return {"report": entry_out(made.entry), "seconds": round(made.seconds, 3)}
