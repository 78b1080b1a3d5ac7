"""The API's shapes: `…Out` answers and `…In` WebSocket requests, apart from the records.

Large answers (/series, /live) are encoded by hand for speed (see `encode.py`); their models
here still document them in the OpenAPI schema at /docs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

SeverityName = Literal["info", "warning", "critical"]


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong and what to send instead.")


class EntityOut(BaseModel):
    path: str = Field(examples=["c01/r01/s01"])
    kind: str = Field(examples=["server"])
    parent: str | None = Field(description="Nearest ancestor in the inventory; null for roots.")
    attributes: dict[str, Any]


class InventoryOut(BaseModel):
    entities: list[EntityOut]


class LiveValueOut(BaseModel):
    value: float | None = Field(description="null when the sensor answered nothing (NaN).")
    ts_ms: int
    age_s: float = Field(description="now_ms - ts_ms, in seconds.")


class LiveOut(BaseModel):
    now_ms: int = Field(description="The wall clock, or the newest sample if the twin is ahead.")
    entities: dict[str, dict[str, LiveValueOut]]


class SeriesOut(BaseModel):
    entity: str
    metric: str
    unit: str | None
    ts: list[int] = Field(description="Sample times (raw) or bucket starts (rollups), in ms.")
    value: list[float | None] | None = Field(None, description="Raw rows only.")
    open: list[float | None] | None = Field(None, description="Rollups only (also high ...).")
    high: list[float | None] | None = None
    low: list[float | None] | None = None
    close: list[float | None] | None = None
    avg: list[float | None] | None = None
    count: list[int] | None = Field(None, description="Readings in the bucket (NaN excluded).")
    missing: list[int] | None = Field(None, description="NULL readings in the bucket.")
    gaps: list[tuple[int, int]] = Field(
        description="[last row before, first row after] for each hole between rows."
    )


class SeriesQueryOut(BaseModel):
    tier: Literal["raw", "1m", "1h"]
    bucket_ms: int = Field(description="0 for raw rows, else the bucket width.")
    from_ms: int
    to_ms: int
    series: list[SeriesOut]


class EventOut(BaseModel):
    ts_ms: int
    end_ts_ms: int | None
    kind: str = Field(examples=["fault.injected"])
    entity: str
    severity: SeverityName
    attributes: dict[str, Any]


class EventsOut(BaseModel):
    events: list[EventOut] = Field(description="Newest first.")


class StatusOut(BaseModel):
    version: str
    started_at: str = Field(description="ISO 8601, UTC.")
    uptime_s: float
    ws_clients: int
    ingest_samples_per_s: float = Field(description="Over the last 10 s.")
    samples_total: int = Field(description="Samples received since the server started.")
    store_bytes: int
    n_series: int
    scenario: str | None
    sim_time_ms: int | None = Field(description="Newest sample time; null before the first.")


class SubscribeIn(BaseModel):
    """`{"type": "subscribe", "entity"?, "metrics"?, "max_rate_hz"?}` on the WebSocket."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    entity: StrictStr = "**"
    metrics: list[StrictStr] | StrictStr | None = None
    max_rate_hz: StrictFloat | StrictInt | None = Field(None, gt=0, le=100)
