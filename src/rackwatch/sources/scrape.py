"""Scrape a Prometheus text endpoint (an exporter's or an application's `/metrics`) into readings.

A `ScrapeTarget` says what to scrape and how: `url` (http or https), `name` (the entity prefix,
e.g. `app/orders`; by default `scrape/<host>_<port>`), `interval_s` (5 s by default, 1..3600),
`timeout_s` (by default the interval, at most 10 s; never over the interval), `labels` (static
labels added to every sample), `entity_labels` (the labels that become entity segments, in
order; by default all of a sample's labels sorted by name), `max_series` (10,000 by default:
the cardinality bound of the target) and `max_bytes` (16 MiB by default: the answer is read
streamed and cut off above it).

A `Scraper` makes one GET per `scrape()`, with the timeout as a deadline on the whole answer,
and turns the exposition into `Reading(entity, metric, value)`s; the caller stamps them with
`to_batch(readings, registry, scraper.last_ts_ms)`. A failed scrape (a refused connection, a
timeout, an answer that is not 200, a body over the cap, a body the parser refuses) raises
`ScrapeError` naming the target and what to do, and is counted (`n_failed`, `last_error`).
The exposition is parsed by the official parser (`prometheus_client.parser`), never by hand,
in a worker thread (`asyncio.to_thread`): a large exposition (node_exporter about a thousand
samples, DCGM more) must not hold the event loop that also drives the fans. The thread still
takes the GIL, but the interpreter hands it back every few milliseconds, so the loop is slowed,
never stalled for the whole parse.

The mapping of a sample to a reading:

- metric: the sample's name (`node_cpu_seconds_total`, `http_server_requests_seconds_count`)
  lowercased, each run of characters other than `[a-z0-9_]` made `_`, ends trimmed of `_`. A
  name with nothing left (or over 200 characters) is skipped and counted (`n_bad_names`).
  The official parser gives a counter's samples the `_total` suffix when the exposition left
  it out (the OpenMetrics convention, also rackwatch's: counters end in `_total`).
- entity: `<name>` then one segment `<label>-<value>` per entity label the sample has with a
  non-empty value (empty and absent are the same in Prometheus), the value made a segment by
  `segment()` (at most 64 characters, `/` and unicode become `_`; a value that is only `/`
  is `root`, as the host source names `/`), e.g. `scrape/node/cpu-0/mode-idle`. `le` and
  `quantile` always come last (after the listed labels, or after the others sorted by name),
  so a histogram's `_bucket` series sit under the entity of its `_count` and `_sum`:
  `app/orders/method-GET/uri-_orders/le-0.5`. A static label of the target wins over the
  sample's label of the same name, which is then kept as `exported_<label>` (Prometheus'
  rule). Entities are checked with `rackwatch.model.entity.validate` (`n_bad_entities`).
- value: NaN is kept (the exporter answered nothing this time); +/-Inf is skipped and
  counted (`n_infinite`): it is never stored as a number.
- Two samples that map to the same (entity, metric) in one scrape (labels that differ only
  outside `entity_labels`, values that become the same segment): the first stays, the others
  are counted (`n_collisions`).
- Cardinality: the first `max_series` (entity, metric) pairs a scraper has seen stay; a new
  pair beyond them is dropped and counted (`n_dropped_series`), every scrape it shows up in.
- Timestamps in the exposition are ignored (see `parse_exposition`).
- Seed 002's application metrics (`APP_INPUTS`: `process_cpu_usage`, `jvm_memory_*_bytes`,
  `http_server_requests_seconds_count`/`_sum`) are also kept whole in
  `ScrapeResult.app_inputs`, every label set's value, including those that collide or that
  the series cap drops: `scrape_loop.py` sums them as Prometheus' `sum()` does.

A line the parser refuses fails the whole scrape, as in Prometheus (the error names the line):
samples read around a line that was not understood could belong to the wrong family.

>>> target = ScrapeTarget(url="http://127.0.0.1:9100/metrics", name="scrape/node")
>>> result = parse_exposition(
...     'node_cpu_seconds_total{cpu="0",mode="idle"} 12.5\\n'
...     'node_load1 0.25\\n'
...     'node_load1 0.5\\n'
...     'DCGM_FI_DEV_GPU_TEMP{gpu="0",pod=""} +Inf\\n',
...     target,
... )
>>> for r in result.readings:
...     print(r.entity, r.metric, r.value)
scrape/node/cpu-0/mode-idle node_cpu_seconds_total 12.5
scrape/node node_load1 0.25
>>> result.n_samples, result.n_collisions, result.n_infinite
(4, 1, 1)
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Self

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_fd_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rackwatch.errors import SourceError, SourceTimeout
from rackwatch.model.entity import validate
from rackwatch.sources.readings import InventoryItem, Reading, segment

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0
MAX_TIMEOUT_S = 10.0
DEFAULT_MAX_SERIES = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_METRIC_LENGTH = 200
LAST_LABELS = ("le", "quantile")
"""Labels that always come last in an entity: a histogram's bucket, a summary's quantile."""
APP_INPUTS = frozenset(
    {
        "process_cpu_usage",
        "jvm_memory_used_bytes",
        "jvm_memory_max_bytes",
        "http_server_requests_seconds_count",
        "http_server_requests_seconds_count_total",  # the parser's name when typed a counter
        "http_server_requests_seconds_sum",
        "http_server_requests_seconds_sum_total",
    }
)
"""Seed 002's application metrics (as rackwatch metric names), from which `scrape_loop.py`
derives its four signals."""

_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
"""The classic text format (never protobuf, which the parser cannot read)."""
_NOT_IN_METRIC = re.compile(r"[^a-z0-9_]+")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN = 120
"""Characters of a bad line or an error body quoted in a message."""


class ScrapeError(SourceError):
    """A scrape that gave nothing: the message names the target and what to do."""


class ScrapeTimeout(ScrapeError, SourceTimeout):
    """The target did not answer in full within its timeout."""


class ScrapeTarget(BaseModel):
    """One endpoint to scrape; see the module's docstring for the fields.

    >>> t = ScrapeTarget(url="http://localhost:9100/metrics")
    >>> t.name, t.interval_s, t.timeout_s, t.max_series
    ('scrape/localhost_9100', 5.0, 5.0, 10000)
    >>> ScrapeTarget(url="https://gpu1.lan/metrics", interval_s=30).timeout_s
    10.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    name: str = ""
    interval_s: float = Field(default=DEFAULT_INTERVAL_S, ge=1, le=3600)
    timeout_s: float = Field(default=0.0, ge=0, le=3600, description="0: the interval, <= 10 s")
    labels: dict[str, str] = Field(default_factory=dict)
    entity_labels: tuple[str, ...] | None = None
    max_series: int = Field(default=DEFAULT_MAX_SERIES, ge=1, le=1_000_000)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise ValueError(f"not a URL: {url!r} ({e})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"scrape an http:// or https:// URL with a host, not {url!r}")
        return url

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            _check_label_name(name)
        return labels

    @field_validator("entity_labels")
    @classmethod
    def _entity_label_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if names is not None:
            for name in names:
                _check_label_name(name)
            if len(set(names)) != len(names):
                raise ValueError(f"entity_labels names a label twice: {list(names)}")
        return names

    @model_validator(mode="after")
    def _defaults(self) -> Self:
        # frozen: the derived defaults are set once, here, before anyone sees the object
        if not self.name:
            url = httpx.URL(self.url)
            port = url.port or (443 if url.scheme == "https" else 80)
            object.__setattr__(self, "name", f"scrape/{segment(f'{url.host}_{port}')}")
        try:
            validate(self.name)
        except ValueError as e:
            raise ValueError(f"name must be an entity path: {e}") from None
        if self.timeout_s <= 0:
            object.__setattr__(self, "timeout_s", min(self.interval_s, MAX_TIMEOUT_S))
        elif self.timeout_s > self.interval_s:
            raise ValueError(
                f"timeout_s ({self.timeout_s}) must not exceed interval_s ({self.interval_s}): "
                "a scrape would still run when the next one is due"
            )
        return self

    @property
    def shown_url(self) -> str:
        """The URL without its user and password (for messages and the inventory)."""
        return str(httpx.URL(self.url).copy_with(userinfo=b""))


def _check_label_name(name: str) -> None:
    if not _LABEL_NAME.match(name):
        raise ValueError(f"bad label name {name!r}: letters, digits and _, not first a digit")


def metric_name(name: str) -> str:
    """A sample's name as a rackwatch metric: lowercase `[a-z0-9_]`, "" when nothing is left.

    >>> metric_name("DCGM_FI_DEV_GPU_UTIL"), metric_name("job:http_requests:rate5m")
    ('dcgm_fi_dev_gpu_util', 'job_http_requests_rate5m')
    >>> metric_name("http.server.requests"), metric_name("é")
    ('http_server_requests', '')
    """
    cleaned = _NOT_IN_METRIC.sub("_", name.lower()).strip("_")
    return cleaned if len(cleaned) <= MAX_METRIC_LENGTH else ""


def label_segment(label: str, value: str) -> str:
    """One entity segment for a label and its value.

    >>> label_segment("cpu", "0"), label_segment("uri", "/orders/{id}"), label_segment("le", "+Inf")
    ('cpu-0', 'uri-orders_id', 'le-Inf')
    >>> label_segment("mountpoint", "/")
    'mountpoint-root'
    """
    shown = "root" if value.strip("/") == "" else segment(value)
    return f"{segment(label)}-{shown}"


@dataclass(slots=True)
class ScrapeResult:
    """One exposition turned into readings, with what was left out and why."""

    readings: list[Reading] = field(default_factory=list)
    n_samples: int = 0
    n_bad_names: int = 0
    n_infinite: int = 0
    n_collisions: int = 0
    n_dropped_series: int = 0
    n_bad_entities: int = 0
    new_series: set[tuple[str, str]] = field(default_factory=set)
    """(entity, metric) pairs not in `known` before, kept: the scraper adds them."""
    app_inputs: dict[str, list[float]] = field(default_factory=dict)
    """The values of the `APP_INPUTS` metrics, every label set (collisions and the series cap
    aside), by metric."""


class _Lines(io.StringIO):
    """The exposition for the official parser, counting the lines it has read, so that a
    parse error can name its line (`text_string_to_metric_families` is this parser over a
    plain StringIO)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.line_no = 0
        self.line = ""

    def __next__(self) -> str:  # type: ignore[override]  # typeshed: IOBase's bytes
        self.line = super().__next__()
        self.line_no += 1
        return self.line


def parse_exposition(
    text: str, target: ScrapeTarget, known: AbstractSet[tuple[str, str]] = frozenset()
) -> ScrapeResult:
    """Readings from a Prometheus text exposition (see the module's docstring for the rules).

    `known` is the scraper's set of (entity, metric) pairs seen so far, read only: a pair not
    in it is new (`result.new_series`, for the caller to add) while the two together hold no
    more than `target.max_series`, else dropped and counted. Raises ValueError (with the
    line) where the parser refuses the text: then nothing of it is kept, as in Prometheus.
    """
    # Timestamps in the exposition are ignored: every sample is stamped with the scrape's
    # instant (`to_batch`). A collection is one instant in rackwatch (the store keeps one
    # value per series and instant); an exporter that stamps samples (a federation, a cache,
    # a job's last push) does so on another clock, possibly minutes old or ahead, which
    # would land values out of order or behind what the store already holds, and hide from
    # the silence watchdog that the value itself is stale.
    result = ScrapeResult()
    readings = result.readings
    seen: set[tuple[str, str]] = set()
    new = result.new_series
    app_inputs = result.app_inputs
    metrics: dict[str, str] = {}
    entity_of = _EntityMapper(target)
    for family in _families(text):
        for sample in family.samples:
            result.n_samples += 1
            metric = metrics.get(sample.name)
            if metric is None:
                metric = metrics[sample.name] = metric_name(sample.name)
            if not metric:
                result.n_bad_names += 1
                continue
            value = float(sample.value)
            if math.isinf(value):
                result.n_infinite += 1
                continue
            if metric in APP_INPUTS:
                app_inputs.setdefault(metric, []).append(value)
            key = (entity_of(sample.labels), metric)
            if key in seen:
                result.n_collisions += 1
                continue
            seen.add(key)
            if key not in known and key not in new:
                if len(known) + len(new) >= target.max_series:
                    result.n_dropped_series += 1
                    continue
                try:
                    validate(key[0])
                except ValueError:
                    result.n_bad_entities += 1
                    continue
                new.add(key)
            readings.append(Reading(key[0], metric, value))
    return result


def _families(text: str) -> Iterator[Metric]:
    """The official parser's families; its error, whatever its type, as a ValueError that
    names the line."""
    lines = _Lines(text)
    try:
        yield from text_fd_to_metric_families(lines)
    except Exception as e:  # mostly ValueError, but any error here is the text's
        shown = lines.line.strip()[:_SHOWN]
        why = str(e) or type(e).__name__
        raise ValueError(f"line {lines.line_no}: {why[:_SHOWN]} (the line: {shown!r})") from e


class _EntityMapper:
    """A sample's labels to its entity path, segments cached across samples."""

    def __init__(self, target: ScrapeTarget) -> None:
        self.name = target.name
        self.static = target.labels
        self.listed = target.entity_labels
        self._segments: dict[tuple[str, str], str] = {}

    def __call__(self, labels: Mapping[str, str]) -> str:
        if not labels and not self.static:
            return self.name
        if self.static:
            merged = dict(labels)
            for label, static in self.static.items():
                exported = merged.get(label)
                if exported:
                    merged[f"exported_{label}"] = exported
                merged[label] = static
            labels = merged
        parts = [self.name]
        for label in self._order(labels):
            value = labels.get(label)
            if value:
                key = (label, value)
                part = self._segments.get(key)
                if part is None:
                    if len(self._segments) > 100_000:
                        self._segments.clear()
                    part = self._segments[key] = label_segment(label, value)
                parts.append(part)
        return "/".join(parts)

    def _order(self, labels: Mapping[str, str]) -> list[str]:
        if self.listed is None:
            first = sorted(label for label in labels if label not in LAST_LABELS)
        else:
            first = list(self.listed)
        return first + [label for label in LAST_LABELS if label in labels and label not in first]


class Scraper:
    """Scrapes one target; `scrape()` is one GET, calls are serialised.

    Give it the `httpx.AsyncClient` to share (it stays open), or none: the scraper then makes
    its own (no proxies from the environment, redirects followed) and `aclose()` closes it.
    """

    def __init__(self, target: ScrapeTarget, client: httpx.AsyncClient | None = None) -> None:
        self.target = target
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=True, trust_env=False)
        self._lock = asyncio.Lock()
        self._known: set[tuple[str, str]] = set()
        self.n_ok = 0
        self.n_failed = 0
        self.last_error: str | None = None
        self.last_ts_ms: int | None = None
        """When the latest successful scrape was sent (ms UTC): the instant of its readings."""
        self.last_duration_s: float | None = None
        self.last: ScrapeResult | None = None
        """What the latest successful scrape counted (its readings, what it left out)."""
        self.n_bad_names = 0
        self.n_infinite = 0
        self.n_collisions = 0
        self.n_dropped_series = 0
        self.n_bad_entities = 0

    @property
    def n_series(self) -> int:
        """(entity, metric) pairs seen so far, at most `target.max_series`."""
        return len(self._known)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def scrape(self) -> list[Reading]:
        """The target's samples as readings; raises ScrapeError (counted) when it gives none."""
        async with self._lock:
            ts_ms = time.time_ns() // 1_000_000
            started = time.perf_counter()
            try:
                body = await self._fetch()
                result = await asyncio.to_thread(self._parse, body)
            except ScrapeError as e:
                self.n_failed += 1
                if self.last_error is None:  # once per spell of failures, not every 5 s
                    log.warning("%s", e)
                self.last_error = str(e)
                raise
            if self.last_error is not None:
                log.info("scrape %s answers again", self.target.name)
            self.n_ok += 1
            self.last_error = None
            self.last_ts_ms = ts_ms
            self.last_duration_s = time.perf_counter() - started
            self.last = result
            # added here, on the loop, once the scrape succeeded: a failed or cancelled one
            # takes no place under max_series
            self._known |= result.new_series
            self._count(result)
            return result.readings

    def inventory(self) -> list[InventoryItem]:
        """One `scrape_target` item: where, how often, how it went."""
        target = self.target
        return [
            {
                "entity": target.name,
                "kind": "scrape_target",
                "url": target.shown_url,
                "interval_s": target.interval_s,
                "timeout_s": target.timeout_s,
                "last_error": self.last_error,
                "n_ok": self.n_ok,
                "n_failed": self.n_failed,
                "n_series": self.n_series,
                "max_series": target.max_series,
                "n_dropped_series": self.n_dropped_series,
            }
        ]

    def _where(self) -> str:
        return f"scrape {self.target.name} ({self.target.shown_url})"

    async def _fetch(self) -> str:
        target = self.target
        headers = {
            "Accept": _ACCEPT,
            "User-Agent": "rackwatch-scraper",
            "X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_s:g}",
        }
        try:
            # httpx's timeout bounds each read; the deadline bounds the whole answer (an
            # exporter that trickles bytes would pass the first and hold the scrape forever)
            async with (
                asyncio.timeout(target.timeout_s),
                self._client.stream(
                    "GET",
                    target.url,
                    headers=headers,
                    timeout=target.timeout_s,
                    follow_redirects=True,
                ) as response,
            ):
                if response.status_code != 200:
                    raise ScrapeError(await self._status_message(response))
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > target.max_bytes:
                    raise self._too_big(f"it announces {int(declared):,} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > target.max_bytes:
                        raise self._too_big(f"cut off after {size:,} bytes")
                    chunks.append(chunk)
        except (TimeoutError, httpx.TimeoutException):
            raise ScrapeTimeout(
                f"{self._where()}: no full answer within {target.timeout_s:g} s; check that "
                "the exporter is up and reachable, or raise timeout_s (at most interval_s)"
            ) from None
        except httpx.HTTPError as e:
            raise ScrapeError(
                f"{self._where()}: {type(e).__name__}: {e or 'no detail'}; check that the "
                "exporter is running and listening at that address"
            ) from e
        return b"".join(chunks).decode("utf-8", errors="replace")

    async def _status_message(self, response: httpx.Response) -> str:
        status = response.status_code
        if status in (401, 403):
            hint = "the endpoint wants credentials or refuses this host"
        elif status == 404:
            hint = "check the URL's path (node_exporter: /metrics, Spring: /actuator/prometheus)"
        elif status >= 500:
            hint = "the exporter failed to collect; see its log"
        else:
            hint = "check the URL"
        head = b""
        try:  # the start of the body only: an error page can be as large as it likes
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= _SHOWN:
                    break
        except httpx.HTTPError:
            pass
        shown = head[:_SHOWN].decode("utf-8", errors="replace").strip()
        said = f": {shown!r}" if shown else ""
        return f"{self._where()}: HTTP {status} {response.reason_phrase}{said}; {hint}"

    def _too_big(self, what: str) -> ScrapeError:
        return ScrapeError(
            f"{self._where()}: the answer is over max_bytes ({self.target.max_bytes:,} bytes; "
            f"{what}); raise max_bytes or make the exporter expose fewer series"
        )

    def _parse(self, body: str) -> ScrapeResult:
        try:
            return parse_exposition(body, self.target, self._known)
        except ValueError as e:
            raise ScrapeError(
                f"{self._where()}: not the Prometheus text format, {e}; check that the URL is "
                "the exporter's metrics endpoint and what it serves there"
            ) from None

    def _count(self, result: ScrapeResult) -> None:
        if result.n_dropped_series and not self.n_dropped_series:
            log.warning(
                "scrape %s: over max_series (%d): new series are dropped; raise max_series or "
                "narrow entity_labels",
                self.target.name,
                self.target.max_series,
            )
        self.n_bad_names += result.n_bad_names
        self.n_infinite += result.n_infinite
        self.n_collisions += result.n_collisions
        self.n_dropped_series += result.n_dropped_series
        self.n_bad_entities += result.n_bad_entities
