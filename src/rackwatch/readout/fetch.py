"""Stored rows for `rackwatch query`: from the store itself, or, while a `rackwatch run` holds
the store, through that server's REST API. Both paths give the same `Answer` for the same data.

The range is `since` back from the newest sample of the matched series (the store's latest
rows; the server's live state), to that sample included. Without a step the rows are raw
samples (unless the range reaches past the raw tier's retention: then the store answers from a
rollup, and `--step raw` refuses); with one, buckets of it (see `store.base.choose_tier`).

`read_through` (the store, or its server while it is in use) and `connect` serve `rackwatch
export` too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from rackwatch.api.params import is_glob
from rackwatch.errors import RackwatchError, StoreError, StoreLocked
from rackwatch.model import METRICS, SeriesKey
from rackwatch.readout import server_file
from rackwatch.store.base import RAW_COLUMNS, ROLLUP_COLUMNS, Query, QueryResult, Store

Array = npt.NDArray[Any]

MAX_ROWS = 1_000_000
"""The most rows one /series answer holds (the server's `ApiContext.max_points`): a bigger
range is fetched in windows."""
RAW_INTERVAL_MS = 5000
"""The sampling interval the server assumes to size a raw query (`ApiContext.raw_interval_ms`)."""
CONTROL_TOKEN_FILE = "control-token.txt"
"""Written by the first `rackwatch run` (`app.ensure_control_token`)."""
LOCK_WAIT_S = 5.0
"""How long to wait for a store in use to be freed, or for its server to answer."""
STATUS_TIMEOUT_S = 5.0
SERIES_TIMEOUT_S = 120.0
_INT_COLUMNS = ("count", "missing")
T = TypeVar("T")


class ReadoutError(RackwatchError):
    """The rows cannot be read; the message says why and what to do."""


class OptionError(ReadoutError):
    """A command cannot do what it was asked; `option` names the option at fault, if one is."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class UnknownMetric(ReadoutError):
    """A plain metric name that is neither in the catalogue nor stored."""


class NoSeries(ReadoutError):
    """No stored series matches the entity and metrics (or none has a sample yet)."""


class ServerUnreachable(ReadoutError):
    """The recorded server does not answer (it may be starting or stopping)."""


@dataclass(frozen=True, slots=True)
class Request:
    """What `rackwatch query` asks for. `raw`: raw rows only (`--step raw`)."""

    entity: str = "**"
    metrics: tuple[str, ...] | None = None
    since_ms: int = 3_600_000
    step_ms: int | None = None
    raw: bool = False


@dataclass(frozen=True, slots=True)
class SeriesRows:
    """One series' rows: `ts` (epoch ms, UTC; bucket starts for rollups) and `columns`."""

    entity: str
    metric: str
    unit: str | None
    ts: npt.NDArray[np.int64]
    columns: Mapping[str, Array]

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class Answer:
    """Rows of every matched series, for [from_ms, to_ms). `columns` is `("value",)` for raw
    rows (`bucket_ms` 0) and the rollup columns for buckets of `bucket_ms`."""

    tier: str
    bucket_ms: int
    from_ms: int
    to_ms: int
    series: tuple[SeriesRows, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return ROLLUP_COLUMNS if self.bucket_ms > 0 else RAW_COLUMNS

    @property
    def n_rows(self) -> int:
        return sum(len(s) for s in self.series)


OpenStore = Callable[[], tuple[Store, Sequence[SeriesKey]]]
"""Opens the store of the data directory; returns it and the keys of its series."""


def fetch_answer(
    open_store: OpenStore,
    data_dir: Path,
    request: Request,
    token: str | None = None,
    *,
    on_remote: Callable[[str], None] | None = None,
) -> Answer:
    """The answer from the store, or from the server recorded in `data_dir` while the store
    is in use by it (`on_remote` gets its URL); see `read_through`."""

    def local(store: Store, keys: Sequence[SeriesKey]) -> Answer:
        try:
            return from_store(store, keys, request)
        finally:
            store.close()

    def remote(url: str) -> Answer:
        return from_server(url, request, lambda: read_token(token, data_dir))

    return read_through(open_store, data_dir, local, remote, on_remote=on_remote)


def read_through(
    open_store: OpenStore,
    data_dir: Path,
    local: Callable[[Store, Sequence[SeriesKey]], T],
    remote: Callable[[str], T],
    *,
    on_remote: Callable[[str], None] | None = None,
    again: str = "query",
) -> T:
    """`local(store, keys)` on the store of `data_dir`, or `remote(url)` on the server recorded
    there while the store is in use by it (`on_remote` gets its URL). Waits up to LOCK_WAIT_S
    for a store in use by another process to be freed, or for its server to answer; then says
    what to do (`again`: the command to run again). `local` owns the store it is given."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            store, keys = open_store()
        except StoreError as exc:
            in_use = isinstance(exc, StoreLocked)
            server = server_file.find(data_dir)
            if server is None and not in_use:
                raise
            if server is not None:
                try:
                    answer = remote(server.url)
                except ServerUnreachable:
                    if time.monotonic() >= deadline:
                        raise
                else:
                    if on_remote is not None:
                        on_remote(server.url)
                    return answer
            elif time.monotonic() >= deadline:
                raise ReadoutError(
                    f"the store in {data_dir} is in use by another process, and no running "
                    f"server of `rackwatch run` is recorded for it ({data_dir}/"
                    f"{server_file.SERVER_FILE} is missing, or its process is gone): wait for "
                    f"that process to finish or stop it, then {again} again"
                ) from None
            time.sleep(0.25)
            continue
        return local(store, keys)


def read_token(given: str | None, data_dir: Path) -> str | None:
    """The token to send when the server wants one: `given` (--token, RACKWATCH_TOKEN), else
    the control token the first run wrote in the data directory, else None."""
    if given:
        return given.strip()
    try:
        secret = (data_dir / CONTROL_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return secret or None


# --------------------------------------------------------------------------- from the store


def check_metric_names(metrics: Iterable[str] | None, stored: Iterable[str]) -> None:
    """UnknownMetric for a plain name neither in the catalogue nor stored (as REST's 400)."""
    if not metrics:
        return
    names = frozenset(METRICS) | frozenset(stored)
    unknown = [m for m in metrics if not is_glob(m) and m not in names]
    if unknown:
        raise UnknownMetric(
            f"unknown metric {unknown[0]!r}; known metrics: {', '.join(sorted(names))}"
        )


def from_store(store: Store, keys: Sequence[SeriesKey], request: Request) -> Answer:
    """The answer read from an open store whose series are `keys`."""
    check_metric_names(request.metrics, {k.metric for k in keys})
    latest = store.latest(request.entity, request.metrics)
    if len(latest.ts) == 0:
        raise _no_series(request)
    end = int(latest.ts.max()) + 1
    start = max(0, end - request.since_ms)
    result = store.query(
        Query(start, end, entity=request.entity, metrics=request.metrics, step_ms=request.step_ms)
    )
    return _check_raw(request, from_result(result, start, end))


def from_result(result: QueryResult, from_ms: int, to_ms: int) -> Answer:
    columns = ROLLUP_COLUMNS if result.bucket_ms > 0 else RAW_COLUMNS
    series = []
    for key, rows in result:
        spec = METRICS.get(key.metric)
        series.append(
            SeriesRows(
                key.entity,
                key.metric,
                None if spec is None else spec.unit,
                rows["ts"],
                {name: rows[name] for name in columns},
            )
        )
    return Answer(result.tier.value, result.bucket_ms, from_ms, to_ms, tuple(series))


def _no_series(request: Request) -> NoSeries:
    metrics = ", ".join(request.metrics) if request.metrics else "any"
    return NoSeries(f"no series with samples match entity {request.entity!r} and metric {metrics}")


def _check_raw(request: Request, answer: Answer) -> Answer:
    if request.raw and answer.bucket_ms > 0:
        raise ReadoutError(
            f"raw samples are no longer kept that far back (this range is answered from the "
            f"{answer.tier} tier): give a shorter --since, or a --step such as 1m or 1h"
        )
    return answer


# --------------------------------------------------------------------------- from the server


def from_server(
    url: str,
    request: Request,
    token: Callable[[], str | None] = lambda: None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Answer:
    """The answer read through a running server's REST API (`/status`, `/live`, `/series`).

    Reads go without a token first (a loopback client needs none by default); on a 401/403
    they are retried with `token()`. A range bigger than one answer may hold is fetched in
    windows (aligned on the step, so that no bucket is split) and joined.
    """
    api = connect(url, token, transport=transport)
    with contextlib.closing(api.client):  # httpx refuses `with` on a client already used
        try:
            return _check_raw(request, _query_server(api, request))
        except httpx.TransportError as exc:
            raise ReadoutError(f"lost the server at {url} during the query: {exc}") from None


def connect(
    url: str,
    token: Callable[[], str | None] = lambda: None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Api:
    """A client of the rackwatch server at `url`, checked with GET /status (ServerUnreachable
    when nothing answers). The caller closes `api.client`."""
    base = url.rstrip("/") + "/api/v1"
    client = httpx.Client(base_url=base, timeout=SERIES_TIMEOUT_S, transport=transport)
    api = Api(client, url, token)
    try:
        try:
            status = api.get("/status", timeout=STATUS_TIMEOUT_S)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"the server recorded for this data directory ({url}) does not answer ({exc}); "
                "it may be starting or stopping: try again in a moment"
            ) from None
        if not isinstance(status, dict) or "version" not in status:
            raise ReadoutError(f"{url} does not answer like a rackwatch server (GET /status)")
    except BaseException:
        client.close()
        raise
    return api


def selection(entity: str, metrics: Sequence[str] | None) -> list[tuple[str, str]]:
    """The query parameters that select series (entity glob, metric names or globs)."""
    return [("entity", entity), *(("metric", m) for m in metrics or ())]


def live_newest(api: Api, select: Sequence[tuple[str, str]]) -> list[int]:
    """The newest sample's time of each selected series with one (GET /live)."""
    live = api.get("/live", select)
    return [
        int(sample["ts_ms"])
        for metrics in live.get("entities", {}).values()
        for sample in metrics.values()
    ]


def _query_server(api: Api, request: Request) -> Answer:
    select = selection(request.entity, request.metrics)
    newest = live_newest(api, select)
    if not newest:
        raise _no_series(request)
    end = max(newest) + 1
    start = max(0, end - request.since_ms)
    step = [] if request.step_ms is None else [("step", str(request.step_ms))]
    probe = api.get("/series", [*select, ("from", str(end - 1)), ("to", str(end)), *step])
    windows = split_range(start, end, len(probe["series"]), request.step_ms)
    parts = [
        api.get("/series", [*select, ("from", str(lo)), ("to", str(hi)), *step])
        for lo, hi in windows
    ]
    return join_windows(parts, start, end)


class Api:
    """GETs that return the JSON body; errors become ReadoutError with the server's detail."""

    def __init__(self, client: httpx.Client, url: str, token: Callable[[], str | None]) -> None:
        self.client = client
        self.url = url
        self.token = token
        self.authorized = False

    def get(
        self, path: str, params: Sequence[tuple[str, str]] = (), timeout: float | None = None
    ) -> Any:
        kwargs: dict[str, Any] = {"params": list(params)}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = self.client.get(path, **kwargs)
        if response.status_code in (401, 403) and not self.authorized:
            secret = self.token()
            if secret is None:
                raise ReadoutError(
                    f"the server at {self.url} wants a token for reads "
                    f"({_detail(response)}): pass --token or set RACKWATCH_TOKEN (a token from "
                    "`rackwatch token create --scope read`)"
                )
            self.client.headers["Authorization"] = f"Bearer {secret}"
            self.authorized = True
            response = self.client.get(path, **kwargs)
        if response.status_code == 200:
            return response.json()
        detail = _detail(response)
        if response.status_code in (401, 403):
            raise ReadoutError(f"the server at {self.url} refused the token: {detail}")
        if response.status_code == 400 and detail.startswith("unknown metric"):
            raise UnknownMetric(detail)
        raise ReadoutError(
            f"the server at {self.url} answered {response.status_code} to GET {path}: {detail}"
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(body)[:500]


def split_range(
    start: int,
    end: int,
    n_series: int,
    step_ms: int | None,
    max_rows: int | None = None,
    raw_interval_ms: int = RAW_INTERVAL_MS,
) -> list[tuple[int, int]]:
    """[start, end) cut into windows the server answers (each at most `max_rows` rows by its
    estimate: n_series x (span // (step or the raw interval) + 1)); cuts fall on multiples of
    the step, so each bucket lies in one window.

    >>> split_range(0, 100, 1, 10, max_rows=100)
    [(0, 100)]
    >>> split_range(5, 50, 2, 10, max_rows=4)  # 2 series x (10 // 10 + 1) = 4 rows a window
    [(5, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    >>> split_range(0, 60_000, 3, None, max_rows=15)
    [(0, 20000), (20000, 40000), (40000, 60000)]
    """
    max_rows = MAX_ROWS if max_rows is None else max_rows
    per_row = step_ms or raw_interval_ms
    if n_series * ((end - start) // per_row + 1) <= max_rows:
        return [(start, end)]
    align = step_ms or 1
    span = (max_rows // max(n_series, 1) - 1) * per_row
    span -= span % align
    if span <= 0:
        return [(start, end)]  # no window is small enough: the server says what to do
    windows = []
    lo, hi = start, start - start % align + span
    while hi < end:
        windows.append((lo, hi))
        lo, hi = hi, hi + span
    windows.append((lo, end))
    return windows


def join_windows(parts: Sequence[Mapping[str, Any]], from_ms: int, to_ms: int) -> Answer:
    """One Answer from /series answers for consecutive windows."""
    tier, bucket_ms = str(parts[0]["tier"]), int(parts[0]["bucket_ms"])
    if any((p["tier"], p["bucket_ms"]) != (tier, bucket_ms) for p in parts):
        raise ReadoutError(
            "this range reaches past a tier's retention and is too big for one answer of the "
            "server: give a larger --step or a shorter --since"
        )
    columns = ROLLUP_COLUMNS if bucket_ms > 0 else RAW_COLUMNS
    pieces: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for part in parts:
        for item in part["series"]:
            pieces.setdefault((item["entity"], item["metric"]), []).append(item)
    series = []
    for (entity, metric), items in pieces.items():
        ts = np.asarray([t for item in items for t in item["ts"]], dtype=np.int64)
        cols: dict[str, Array] = {}
        for name in columns:
            dtype = np.int64 if name in _INT_COLUMNS else np.float64  # None -> NaN
            cols[name] = np.asarray([v for item in items for v in item[name]], dtype=dtype)
        series.append(SeriesRows(entity, metric, items[0].get("unit"), ts, cols))
    return Answer(tier, bucket_ms, from_ms, to_ms, tuple(series))
