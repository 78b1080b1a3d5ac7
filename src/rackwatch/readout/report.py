"""`rackwatch report`'s work: make a period's report from the store of the data directory, or,
while a `rackwatch run` holds that store, ask the running server to make it (`POST
/api/v1/reports`, with the data directory's control token unless one is given) and fetch
the file. Either way the report is archived in `<data_dir>/reports` and the asked format's
bytes come back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from rackwatch.engine.reports import Reporter, ReportError
from rackwatch.model import SeriesKey
from rackwatch.readout import fetch
from rackwatch.readout.fetch import OpenStore, ReadoutError
from rackwatch.store.base import Store

MAKE_TIMEOUT_S = 600.0
"""How long the server may take to make a report (a month of 2,000 servers: under a minute)."""


@dataclass(frozen=True, slots=True)
class Asked:
    kind: str
    day: dt.date | None
    fmt: str


@dataclass(frozen=True, slots=True)
class Made:
    name: str
    fmt: str
    body: bytes
    archived: Path
    seconds: float
    server: str | None
    """The URL of the server that made it (None: made here, from the store)."""


def make(
    open_store: OpenStore,
    data_dir: Path,
    reporter_of: Callable[[Store], Reporter],
    asked: Asked,
    token: str | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    on_remote: Callable[[str], None] | None = None,
) -> Made:
    """The report, made here or by the server holding the store (ReportError for a bad
    period or date, ReadoutError when the server cannot be reached or refuses)."""

    def local(store: Store, _keys: Sequence[SeriesKey]) -> Made:
        try:
            reporter = reporter_of(store)
            period = reporter.period(asked.kind, asked.day)
            made = reporter.generate(period, extra_formats=[asked.fmt], on_stage=on_stage)
            path = reporter.archive.path(period, asked.fmt)
            return Made(period.name, asked.fmt, made.files[asked.fmt], path, made.seconds, None)
        finally:
            store.close()

    def remote(url: str) -> Made:
        if on_stage is not None:
            on_stage("asking the running server")
        return from_server(url, data_dir, asked, fetch.read_token(token, data_dir))

    return fetch.read_through(
        open_store, data_dir, local, remote, on_remote=on_remote, again="report"
    )


def from_server(
    url: str,
    data_dir: Path,
    asked: Asked,
    token: str | None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Made:
    api = fetch.connect(url, transport=transport)
    with contextlib.closing(api.client):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        params = {"period": asked.kind, "format": asked.fmt}
        if asked.day is not None:
            params["date"] = asked.day.isoformat()
        try:
            made = api.client.post(
                "/reports", params=params, headers=headers, timeout=MAKE_TIMEOUT_S
            )
            if made.status_code == 400:
                raise ReportError(_detail(made))
            _check(made, url, "POST /reports")
            body = made.json()
            answer = body["report"]
            file_name = answer["files"][asked.fmt]["name"]
            got = api.client.get(f"/reports/{file_name}", headers=headers)
            _check(got, url, f"GET /reports/{file_name}")
        except httpx.TransportError as exc:
            raise ReadoutError(f"lost the server at {url}: {exc}") from None
    kind = str(answer["period"])
    return Made(
        str(answer["name"]),
        asked.fmt,
        got.content,
        data_dir / "reports" / kind / file_name,
        float(body.get("seconds", 0.0)),
        url,
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def _check(response: httpx.Response, url: str, what: str) -> None:
    if response.status_code in (200, 201):
        return
    detail = _detail(response)
    if response.status_code in (401, 403):
        raise ReadoutError(
            f"the server at {url} refused to make the report ({detail}): making one needs a "
            "control token (--token, RACKWATCH_TOKEN, or the data directory's "
            "control-token.txt)"
        )
    raise ReadoutError(f"the server at {url} answered {response.status_code} to {what}: {detail}")
