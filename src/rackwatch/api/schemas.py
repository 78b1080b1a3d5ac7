"""The API's shapes: `…Out` answers and `…In` WebSocket requests, apart from the records.

Large answers (/series, /live) are encoded by hand for speed (see `encode.py`); their models
here still document them in the OpenAPI schema at /docs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from rackwatch.api.params import MAX_GLOB_LENGTH, MAX_TS_MS

SeverityName = Literal["info", "warning", "critical"]

EntityPath = Annotated[StrictStr, Field(max_length=MAX_GLOB_LENGTH)]
"""An entity path in a body: at most as long as an entity glob."""
MAX_NAME_LENGTH = 64
"""Fault kinds, fan modes and level names are short words."""
MAX_LEVEL_MAGNITUDE = 1_000_000
"""Beyond it a number is no fan level, and too big to hand on (a float overflows)."""


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong and what to send instead.")


class EntityOut(BaseModel):
    path: str = Field(examples=["c01/r01/s01"])
    kind: str = Field(examples=["server"])
    parent: str | None = Field(description="Nearest ancestor in the inventory; null for roots.")
    attributes: dict[str, Any]


class DisagreementOut(BaseModel):
    path: str
    field: str
    declared: Any = Field(description="What the configuration declares (it wins).")
    discovered: Any = Field(description="What an agent or a PDU reported.")


class InventoryOut(BaseModel):
    entities: list[EntityOut]
    disagreements: list[DisagreementOut] = Field(
        default_factory=list,
        description="Declared attributes a source reported otherwise (docs/INVENTORY.md).",
    )


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


class RetentionRunOut(BaseModel):
    at: str = Field(description="When it ran (ISO 8601, UTC).")
    now_ms: int = Field(description="The instant each tier's period was measured back from.")
    deleted: dict[str, int] = Field(description="Rows deleted per tier (raw, 1m, 1h).")
    seconds: float


class RetentionOut(BaseModel):
    interval_s: float
    n_runs: int
    n_errors: int
    last: RetentionRunOut | None
    deleted_total: dict[str, int] = Field(description="Rows deleted per tier since start.")


class StoreStatusOut(BaseModel):
    log_bytes: int = Field(description="The write-ahead log of samples not yet in the tables.")
    head_samples: int = Field(description="Samples held in memory (and in the log).")
    duplicates_dropped: int = Field(
        description="Samples dropped since start: their series already had a value at that "
        "instant (the first value written stays)."
    )
    expired_dropped: int = Field(
        description="Samples dropped since start: older than what raw retention keeps."
    )
    retention: RetentionOut | None


class NotifierStatusOut(BaseModel):
    sent: int
    failed: int = Field(description="Deliveries that failed or timed out, after retries.")
    retries: int = Field(description="Attempts after the first (webhook and Slack).")
    dropped: int = Field(
        description="Lost: pushed out of a full queue, or left at stop with no spool."
    )
    filtered: int
    spooled: int = Field(description="Undelivered at stop, kept for the next start.")
    restored: int = Field(description="Taken back from the spool at this start.")
    pending: int = Field(description="Queued now.")


class WriterStatusOut(BaseModel):
    samples_written: int
    events_written: int
    errors: int = Field(description="Failed store writes (their records are tried again).")
    dropped: int = Field(description="Samples and events given up after repeated failures.")
    quarantined: int = Field(description="Samples and events the store refused, set aside.")


class LatencyOut(BaseModel):
    median: float | None = Field(
        description="Seconds from a labelled fault to its first detection."
    )
    p95: float | None
    n_faults: int = Field(description="Labelled faults in the window (the twin's injections).")
    n_detected: int


class ModelOut(BaseModel):
    version: str | None = Field(description="The learned residual model in use (null: none yet).")
    trained_at: int | None = Field(description="When it was trained (ms).")
    n_devices: int = 0


class IntelligenceStatusOut(BaseModel):
    """Seed 000's KPIs over the last 24 h of stored events (engine/evaluation/live.py)."""

    window_s: float
    anomalies_per_day: float | None
    incidents_per_day: float | None
    incidents_open: int
    anomalies_open: int
    detection_latency_s: LatencyOut
    model: ModelOut


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
    store: StoreStatusOut
    notifiers: dict[str, NotifierStatusOut] = Field(
        default_factory=dict, description="Per notifier, counts since start (empty: none)."
    )
    silent_sources: list[str] = Field(
        default_factory=list,
        description="Telemetry sources that sent nothing for the silence timeout (wall clock).",
    )
    writer: WriterStatusOut | None = Field(
        None, description="The store writer's counters (null when not running here)."
    )
    intelligence: IntelligenceStatusOut | None = Field(
        None, description="Anomalies, incidents, detection latency, model (null: not running)."
    )


class SubscribeIn(BaseModel):
    """`{"type": "subscribe", "entity"?, "metrics"?, "max_rate_hz"?}` on the WebSocket."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    entity: StrictStr = "**"
    metrics: list[StrictStr] | StrictStr | None = None
    max_rate_hz: StrictFloat | StrictInt | None = Field(None, gt=0, le=100)


# --- control, alerts and states (bearer tokens) ----------------------------------------------

AlertLevelName = Literal["INFO", "WARNING", "CRITICAL"]
AlertStatusName = Literal["firing", "acknowledged", "resolved"]
StateName = Literal["OK", "WARNING", "CRITICAL", "FAILED", "MAINTENANCE", "UNKNOWN"]
MAX_ACK_IDS = 1000
MAX_ALERT_ID_LENGTH = 64
"""Alert ids are 16 hex digits; anything much longer is no id."""
MAX_GROUP_ENTITIES = 10


class AlertOut(BaseModel):
    """One alert: the WebSocket's alert shape plus its lifecycle."""

    id: str = Field(description="Stable 16-hex-digit id, for POST /alerts/{id}/ack.")
    timestamp: str = Field(description="Time of the last change, ISO 8601 (UTC).")
    ts_ms: int = Field(description="Time of the last change.")
    entity: str
    rule: str = Field(examples=["fan-stopped"])
    metric: str = Field(description="What the threshold applies to.", examples=["fan_rpm"])
    unit: str
    value: float | None
    threshold: float | None
    level: AlertLevelName
    status: AlertStatusName
    message: str
    fired_ts_ms: int
    acknowledged_by: str | None
    acknowledged_ts_ms: int | None
    resolved_ts_ms: int | None
    is_failure: bool = Field(description="While active, the entity is FAILED.")
    is_suppressed: bool = Field(description="Raised in maintenance: recorded, not notified.")
    n_reopened: int = Field(description="Times the alert came back within the cooldown.")


class AlertGroupOut(BaseModel):
    """The alerts of one rule in an answer (GET /alerts?group_by=rule)."""

    rule: str = Field(examples=["fan-stopped"])
    level: AlertLevelName = Field(description="The highest level among them.")
    count: int = Field(description="How many alerts of this rule are in the answer.")
    entities: list[str] = Field(
        description=f"The first {MAX_GROUP_ENTITIES} of their entities, oldest fired first."
    )
    oldest_fired_ts_ms: int


class AlertsOut(BaseModel):
    alerts: list[AlertOut] = Field(description="Oldest first (by fired_ts_ms).")
    groups: list[AlertGroupOut] | None = Field(
        None,
        description="With group_by=rule only (absent otherwise): one group per rule, most "
        "severe first, then largest.",
    )


class AlertHistoryOut(BaseModel):
    alerts: list[AlertOut] = Field(description="Newest fired first; one page (limit, offset).")
    total: int = Field(description="Alerts that match, on every page together.")


class AlertAckOut(BaseModel):
    alert: AlertOut


class AlertsAckIn(BaseModel):
    """`{"ids": [...]}`: the alerts to acknowledge at once (1 to 1000 ids)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[StrictStr] = Field(
        description=f"1 to {MAX_ACK_IDS} alert ids (GET /alerts).",
        examples=[["3f2a9c0d1e2b4a5c", "0b1c2d3e4f5a6b7c"]],
    )

    @field_validator("ids")
    @classmethod
    def _bounded(cls, ids: list[str]) -> list[str]:
        if not 1 <= len(ids) <= MAX_ACK_IDS:
            raise ValueError(f"give 1 to {MAX_ACK_IDS} alert ids, got {len(ids)}")
        for i, alert_id in enumerate(ids):
            if not 1 <= len(alert_id) <= MAX_ALERT_ID_LENGTH:
                raise ValueError(
                    f"ids[{i}] must be 1 to {MAX_ALERT_ID_LENGTH} characters (alert ids are "
                    f"16 hex digits), got {len(alert_id)}"
                )
        return ids


class AlertsAckOut(BaseModel):
    acknowledged: list[str] = Field(
        description="Ids now acknowledged (also those that already were), in the order sent."
    )
    not_found: list[str] = Field(description="Ids of no open alert (resolved, or unknown).")


class MaintenanceInfoOut(BaseModel):
    by: str
    reason: str
    since_ms: int | None


class AlertCountsOut(BaseModel):
    warning: int
    critical: int


class StateOut(BaseModel):
    state: StateName | None = Field(
        description="Its own state; null for an entity with none of its own (a rack or a "
        "cluster: only its devices send telemetry)."
    )
    since_ms: int | None = Field(description="When the entity entered this state.")
    reason: str
    usage: Literal["busy", "idle"] | None = Field(description="Servers only; null otherwise.")
    maintenance: MaintenanceInfoOut | None = Field(
        description="The maintenance covering the entity (its own or an ancestor's)."
    )
    rollup_state: StateName = Field(
        description="The worst of its own state and every descendant's: FAILED > CRITICAL > "
        "WARNING > UNKNOWN > MAINTENANCE > OK. What the device shows."
    )
    rollup_from: str | None = Field(
        description="The descendant whose state `rollup_state` is; null when it is its own."
    )
    alerts: AlertCountsOut = Field(
        description="Open alerts (firing or acknowledged, suppressed included) on the entity "
        "and its descendants, by level."
    )


class StatesOut(BaseModel):
    entities: dict[str, StateOut]


class HostDiskOut(BaseModel):
    entity: str = Field(examples=["host/gpu1/disk-root"])
    mountpoint: str = Field(examples=["/"])
    used_bytes: float | None
    total_bytes: float | None = Field(description="The inventory's size, else used + free.")
    utilization_ratio: float | None = Field(description="Used over used + free, as df shows.")


class HostGpuOut(BaseModel):
    entity: str = Field(examples=["host/gpu1/gpu0"])
    index: int | None
    name: str | None = Field(description="The model, from the inventory.")
    utilization_ratio: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None = Field(description="The inventory's, else used + free.")
    memory_utilization_ratio: float | None


class HostOut(BaseModel):
    """One real machine; a value is null when the host has not sent it (or it answered
    nothing)."""

    entity: str = Field(examples=["host/gpu1"])
    name: str = Field(examples=["gpu1"])
    online: bool = Field(
        description="False once it has sent nothing for `offline_after_s` (also in maintenance), "
        "or never sent anything since the server started."
    )
    state: StateOut | None = Field(description="As GET /states (null without alerting).")
    last_seen_ms: int | None = Field(description="Its newest sample, any part.")
    os: str | None
    addresses: list[str] = Field(description="IPv4 first; the first is the one to show.")
    uptime_seconds: float | None
    cpu_utilization_ratio: float | None
    load_average_1m: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None = Field(description="The inventory's, else used + available.")
    memory_utilization_ratio: float | None
    network_receive_bytes_per_second: float | None = Field(description="All interfaces.")
    network_transmit_bytes_per_second: float | None = Field(description="All interfaces.")
    disks: list[HostDiskOut]
    gpus: list[HostGpuOut] = Field(description="By index.")


class HostsOut(BaseModel):
    now_ms: int = Field(description="The server's wall clock (hosts report on it).")
    offline_after_s: float = Field(
        description="`[host] offline_after_seconds` (or its default): silent this long, offline."
    )
    hosts: list[HostOut] = Field(description="By path.")


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityPath = Field(examples=["c01/r01/s03"])
    reason: StrictStr = Field("", max_length=500, examples=["replacing fan2"])


class MaintenanceOut(BaseModel):
    entity: str
    state: StateName


class FanOut(BaseModel):
    entity: str
    server: str
    mode: Literal["auto", "manual"]
    level: int | None = Field(description="Level the fan last reported; null before telemetry.")
    failed: bool = Field(description="Stopped while commanded on.")
    failsafe: bool = Field(description="Its server's telemetry is lost: auto fans held high.")


class FansOut(BaseModel):
    fans: list[FanOut]


class FanModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityPath = Field(description="A fan, a server, a rack or a cluster.")
    mode: StrictStr = Field(
        description="auto or manual.", max_length=MAX_NAME_LENGTH, examples=["auto"]
    )


class FanModeOut(BaseModel):
    entity: str
    mode: Literal["auto", "manual"]


class FanLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityPath = Field(description="A fan or a server (all its fans).")
    level: StrictInt | StrictFloat | StrictStr = Field(
        description="0..3 or off, low, medium, high.", examples=[3, "high"]
    )

    @field_validator("level")
    @classmethod
    def _could_be_a_level(cls, level: int | float | str) -> int | float | str:
        """Refuse what cannot be a level before the controller parses it (an int of 400
        digits overflows a float); the controller still decides which values are levels."""
        if isinstance(level, int) and not -MAX_LEVEL_MAGNITUDE <= level <= MAX_LEVEL_MAGNITUDE:
            raise ValueError("fan level must be 0..3 or one of off, low, medium, high")
        if isinstance(level, str) and len(level) > MAX_NAME_LENGTH:
            raise ValueError("fan level must be 0..3 or one of off, low, medium, high")
        return level


class FanLevelOut(BaseModel):
    entity: str
    level: int
    mode: Literal["manual"]


class FaultKindOut(BaseModel):
    description: str
    target: str = Field(description="What the entity must be: fan, server, servers, pdu ...")
    severity: SeverityName
    defaults: dict[str, Any]
    bounds: dict[str, tuple[float | None, float | None]] = Field(
        description="Allowed [low, high] of numeric parameters (null: unbounded)."
    )
    params_schema: dict[str, Any] = Field(
        description="JSON schema of `params`: names, types, defaults and bounds."
    )


class FaultKindsOut(BaseModel):
    kinds: dict[str, FaultKindOut]


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: StrictStr = Field(max_length=MAX_NAME_LENGTH, examples=["fan_off"])
    entity: EntityPath = Field(examples=["c01/r01/s01/fan1"])
    params: dict[str, Any] | None = Field(
        None, description="Overrides of the kind's defaults (`params_schema` of GET)."
    )
    start_ms: StrictInt | None = Field(
        None, ge=0, le=MAX_TS_MS, description="Start (not in the past); default now."
    )


class CommandOut(BaseModel):
    target: str
    action: str
    params: dict[str, Any]
    issued_by: str
    ts_ms: int | None


class CommandAcceptedOut(BaseModel):
    accepted: Literal[True] = True
    command: CommandOut


# ------------------------------------------------------------------ ingest (agents' push)

MAX_INGEST_BATCHES = 720
"""Instants in one push: an hour of 5 s collections (an agent catching up after an outage
sends its buffer in pushes of at most this many)."""
MAX_INGEST_SAMPLES = 50_000
MAX_INGEST_INVENTORY = 1_000
MAX_VALUE_MAGNITUDE = 1e18
"""Larger readings are refused: a byte counter of an exabyte is no reading of this host."""

MetricName = Annotated[StrictStr, Field(pattern=r"^[a-z_][a-z0-9_]{0,127}$")]
IngestValue = StrictFloat | StrictInt | None


class IngestBatchIn(BaseModel):
    """The readings of one collection: entity -> metric -> value (null: read, no value)."""

    model_config = ConfigDict(extra="forbid")

    ts_ms: StrictInt = Field(ge=0, le=MAX_TS_MS, description="The collection's instant.")
    entities: dict[EntityPath, dict[MetricName, IngestValue]] = Field(
        examples=[{"host/web1": {"cpu_utilization_ratio": 0.42, "load_average_1m": 1.3}}]
    )


class InventoryItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityPath
    kind: StrictStr = Field(pattern=r"^[a-z_]{1,32}$", examples=["host", "gpu"])
    attributes: dict[StrictStr, Any] = Field(default_factory=dict)


class IngestIn(BaseModel):
    """What an agent pushes: collections (oldest first) and, now and then, its inventory."""

    model_config = ConfigDict(extra="forbid")

    batches: list[IngestBatchIn] = Field(max_length=MAX_INGEST_BATCHES)
    inventory: list[InventoryItemIn] = Field(default_factory=list, max_length=MAX_INGEST_INVENTORY)

    @field_validator("batches")
    @classmethod
    def _bounded(cls, batches: list[IngestBatchIn]) -> list[IngestBatchIn]:
        n = sum(len(metrics) for b in batches for metrics in b.entities.values())
        if n > MAX_INGEST_SAMPLES:
            raise ValueError(f"{n} readings in one push; send at most {MAX_INGEST_SAMPLES}")
        for batch in batches:
            for metrics in batch.entities.values():
                for value in metrics.values():
                    if value is not None and not abs(value) <= MAX_VALUE_MAGNITUDE:
                        raise ValueError(
                            f"a reading of {str(value)[:40]} is not a finite number within "
                            f"±{MAX_VALUE_MAGNITUDE:g}"
                        )
        return batches


class IngestOut(BaseModel):
    accepted: int = Field(description="Readings handed to the pipeline.")
    batches: int
    series_created: int
    inventory: int = Field(description="Inventory items written.")


# ------------------------------------------------------------------ health, predictions, anomalies

CriticityName = Literal["low", "medium", "high", "critical"]


class ReasonOut(BaseModel):
    entity: str = Field(description="The device the reason is about (a member's, for a rack).")
    kind: Literal["alert", "state", "anomaly", "forecast", "headroom", "app"]
    detail: str = Field(examples=["fan wear: failure predicted in 45 min (30 min-1.2 h)"])
    penalty: float = Field(description="Points this reason alone takes off 100.")


class NextFailureOut(BaseModel):
    entity: str = Field(description="The device predicted to fail first (this one or a member).")
    what: str = Field(examples=["fan wear"])
    eta_s: float = Field(description="Seconds from now_ms; 0: it has failed.")
    low_s: float | None = Field(description="The interval's low end (the date to plan by).")
    high_s: float | None = Field(description="The interval's high end; null: unbounded.")
    failure_ms: int


class AppSignalOut(BaseModel):
    value: float = Field(
        description="Ratio 0..1 (cpu_usage, jvm_memory_usage), requests/s (request_count) or "
        "seconds (response_time), from the application's newest scrape."
    )
    criticity: Literal["low", "medium", "high", "critical", "regular"] = Field(
        description="Seed 002's class of the value (`regular`: a response time under 0.3 s)."
    )


class HealthNowOut(BaseModel):
    score: float = Field(description="0-100, 100: nothing wrong.")
    criticity: CriticityName = Field(description="Seed 002's class of the risk 100 - score.")
    predicted_score: float = Field(description="The score expected `horizon_s` from now.")
    predicted_criticity: CriticityName
    next_failure: NextFailureOut | None
    reasons: list[ReasonOut] = Field(description="Worst first, its own and its members'.")
    n_members: int = Field(description="Entities rolled up into it (a rack's servers, PDU).")
    app: dict[str, AppSignalOut] | None = Field(
        None,
        description="A scraped application's seed 002 signals (cpu_usage, jvm_memory_usage, "
        "request_count, response_time: those its newest scrape gave); absent for other "
        "entities.",
    )


class HealthNowsOut(BaseModel):
    now_ms: int = Field(description="The newest sample's instant the health is computed at.")
    horizon_s: float
    entities: dict[str, HealthNowOut]


class HealthSeriesOut(BaseModel):
    entity: str
    ts: list[int] = Field(description="Sample times (raw) or bucket starts, ms.")
    score: list[float | None] = Field(description="The score (raw), or the bucket's mean.")
    low: list[float | None] | None = Field(None, description="Buckets only: the lowest score.")
    worst_criticity: CriticityName | None = Field(
        description="The class of the lowest score in the range (null: no sample)."
    )


class HealthRangeOut(BaseModel):
    tier: Literal["raw", "1m", "1h"]
    bucket_ms: int = Field(description="0 for raw samples (one a minute), else the bucket.")
    from_ms: int
    to_ms: int
    entities: list[HealthSeriesOut]


class PredictionOut(BaseModel):
    entity: str = Field(examples=["c01/r02/s05/fan2"])
    what: str = Field(examples=["fan wear"])
    status: Literal["active", "failed", "cleared"] = Field(
        description="active: failure predicted now; failed: it has happened (eta 0); cleared: "
        "the prediction was withdrawn (the trend went away)."
    )
    made_ms: int = Field(description="When this forecast was made.")
    first_made_ms: int = Field(description="The first prediction of this device in the range.")
    n_updates: int = Field(description="Prediction events of this device in the range.")
    eta_s: float | None = Field(description="Seconds from now_ms to the failure (null: cleared).")
    low_s: float | None
    high_s: float | None = Field(description="null: unbounded above (or cleared).")
    failure_ms: int | None
    failure_low_ms: int | None
    failure_high_ms: int | None
    ratio_now: float | None = Field(description="The fan's fitted speed over its healthy speed.")


class PredictionsOut(BaseModel):
    now_ms: int
    from_ms: int
    to_ms: int
    predictions: list[PredictionOut] = Field(
        description="One per device, active ones first (soonest failure first), then the rest."
    )


class AnomalyOut(BaseModel):
    entity: str
    metric: str
    detector: str = Field(examples=["deviation", "level_shift", "stuck", "null_run"])
    start_ms: int
    end_ms: int | None = Field(description="null while it lasts.")
    is_open: bool
    score: float | None = Field(description="The newest score (open) or the score at its end.")
    peak: float | None
    z: float | None = Field(description="Standardized deviation at the start (null: NULL run).")


class AnomaliesOut(BaseModel):
    now_ms: int
    n_open: int
    anomalies: list[AnomalyOut] = Field(
        description="Open ones first (newest start first), then ended ones (newest end first)."
    )


class IncidentAnomalyOut(BaseModel):
    entity: str
    metric: str
    detector: str = Field(examples=["deviation", "level_shift", "stuck", "null_run"])
    start: int | None = Field(description="The anomaly's start (ms).")


class IncidentOut(BaseModel):
    id: str = Field(examples=["inc-1767227480000-c01/r01/s03"])
    entity: str = Field(description="The scope's entity: the device, the rack, or `room`.")
    scope: str = Field(examples=["server", "rack", "room"])
    nature: str = Field(
        examples=["real", "sensor"],
        description="real: a thermal or power problem; sensor: the sensor itself is at fault.",
    )
    cause: str = Field(examples=["fan_failure", "cooling", "sensor_stuck", "unknown"])
    action: str = Field(description="What to do about it.")
    devices: list[str] = Field(description="The servers, hosts and PDUs affected, sorted.")
    anomalies: list[IncidentAnomalyOut] = Field(description="The first 50 of its anomalies.")
    n_anomalies: int
    evidence: list[str]
    start: int | None = Field(description="Its first anomaly's start (ms).")
    end: int | None = Field(description="When it closed (ms); null while open.")
    is_open: bool
    opened_ts: int | None = Field(
        description="The incident.opened event's time (null: older than the events read)."
    )
    updated_ts: int = Field(description="Its newest event's time: its last change.")
    closed_ts: int | None = Field(description="The incident.closed event's time; null: open.")


class IncidentsOut(BaseModel):
    now_ms: int
    from_ms: int
    to_ms: int
    n_open: int = Field(description="Open incidents among all that match (before `limit`).")
    incidents: list[IncidentOut] = Field(
        description="Open ones first (newest start first), then closed ones (newest close first)."
    )
