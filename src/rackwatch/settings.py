"""One typed settings object: defaults < TOML file (`--config`) < `RACKWATCH_*` environment
variables (nested with `__`, e.g. `RACKWATCH_TWIN__SEED=7`) < command-line options.

Only `app` and `cli` read settings; every other part receives plain arguments.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rackwatch.engine.alerts.rules import Guard, Rule, RuleKind
from rackwatch.engine.energy import EnergyConfig, Tariff, TariffPeriod, zone_of
from rackwatch.engine.inventory import DeclaredInventory
from rackwatch.engine.notifiers import TimeWindow
from rackwatch.errors import ConfigError

DAY_S = 86_400


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TwinSettings(_Section):
    enabled: bool = True
    """Off (`--no-twin`): `rackwatch run` watches real machines only."""
    scenario: str = "very-large"
    """A preset (small, medium, large, very-large), a named test protocol or a GPU fleet
    (gpu-fleet, gpu-fleet-large): `rackwatch scenarios` lists them."""
    seed: int = 0
    clusters: int = Field(1, ge=1, le=1000)
    speed: float = Field(1.0, gt=0, le=1_000_000)
    """Simulated seconds per wall second in `rackwatch run`."""
    random_fault_mtbf_days: float | None = Field(None, gt=0)
    """Also draw random failures (fans, disks, sensors) from Weibull lifetimes with this mean
    time between failures per entity; None: only the scenario's scheduled faults."""


class StoreSettings(_Section):
    url: str = Field(default="duckdb", max_length=2048)
    """`duckdb` (the embedded store in the data directory, the default) or
    `postgresql://user@host:port/database`, a PostgreSQL server shared by several processes
    (docs/STORAGE.md, "PostgreSQL"; `--store URL`)."""
    raw_retention_days: float = Field(7, gt=0, le=36_500)
    minute_retention_days: float = Field(90, gt=0, le=36_500)
    hour_retention_days: float = Field(5 * 365, gt=0, le=36_500)
    retention_interval_seconds: float = Field(600, gt=0, le=86_400)
    """`rackwatch run` applies retention at start and then this often."""

    @model_validator(mode="after")
    def _known_url(self) -> StoreSettings:
        if self.url != "duckdb" and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"store url {self.url[:80]!r}: use duckdb or postgresql://user@host:port/db"
            )
        return self


class ServerSettings(_Section):
    """The HTTP server of `rackwatch run`: REST, WebSocket, /metrics and the dashboard."""

    host: str = "127.0.0.1"
    """Loopback by default: other machines reach it only when you say so (0.0.0.0)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """0 picks a free port (printed on start)."""
    ws_client_limit: int = Field(default=1000, ge=1, le=100_000)
    ws_send_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    """A WebSocket client that takes no message for this long is disconnected."""
    open_reads_on_loopback: bool = True
    """Let GET routes and the WebSocket answer clients on this machine without a token.
    Control routes always need a `control` token; other machines always need a token."""
    ingest_series_limit: int = Field(default=200_000, ge=1, le=10_000_000)
    """Series the server may hold before agents' pushes (`POST /api/v1/ingest`) may not
    create more: a bound on what agents can make it keep (about 200 per host)."""


class HostSettings(_Section):
    """This machine, watched by `rackwatch run` beside the twin (the agent's collectors)."""

    enabled: bool = True
    """Off (`--no-host`): the twin only."""
    name: str | None = Field(default=None, max_length=64)
    """Its name in entity paths (`host/<name>`); default: the hostname."""
    interval_seconds: float = Field(default=5.0, ge=0.5, le=3600)
    offline_after_seconds: float | None = Field(default=None, ge=1, le=86_400)
    """Every real machine (this one, agents' hosts, scraped targets): offline (UNKNOWN) after
    this many wall seconds without its telemetry, whatever the twin's speed. At least twice
    `interval_seconds` (and every `[[scrape]]` interval), so that a late collection is not
    an outage. Default: 60, or twice the longest of those intervals (`offline_after_s`)."""

    @model_validator(mode="after")
    def _valid_offline(self) -> HostSettings:
        if self.offline_after_seconds is not None:
            _check_offline_after(
                self.offline_after_seconds, self.interval_seconds, "interval_seconds"
            )
        return self


def _check_offline_after(offline_after_s: float, interval_s: float, what: str) -> None:
    if offline_after_s < 2 * interval_s:
        raise ValueError(
            f"[host] offline_after_seconds ({offline_after_s:g}) must be at least twice {what} "
            f"({interval_s:g}): a host would turn offline between two of its collections"
        )


class ScrapeSettings(_Section):
    """A Prometheus text endpoint `rackwatch run` scrapes (`[[scrape]]`, or `--scrape URL`):
    an exporter (node_exporter, DCGM) or an application's `/metrics`."""

    url: str
    name: str = ""
    """The entity prefix of its series (`app/orders`); default `scrape/<host>_<port>`."""
    interval_seconds: float = Field(default=5.0, ge=1, le=3600)
    timeout_seconds: float = Field(default=0.0, ge=0, le=3600)
    """0: the interval, at most 10 s."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Static labels added to every sample."""
    entity_labels: list[str] | None = None
    """The labels that become entity path segments, in order (default: all, sorted)."""
    max_series: int = Field(default=10_000, ge=1, le=1_000_000)


class PduSettings(_Section):
    """A PDU `rackwatch run` polls over SNMP (`[[pdus]]`; docs/SNMP.md). Secrets (community,
    keys) are never logged or shown."""

    name: str = Field(min_length=1, max_length=128)
    """Its entity: `pdu/<name>`, or the path as given when it holds a `/` (`c01/r01/pdu`)."""
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretStr = SecretStr("public")
    user: str = Field(default="", max_length=64)
    """SNMP v3: the USM user, with its protocols and keys (at least 8 characters)."""
    auth_protocol: Literal["none", "md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "none"
    auth_key: SecretStr = SecretStr("")
    priv_protocol: Literal["none", "des", "3des", "aes", "aes192", "aes256"] = "none"
    priv_key: SecretStr = SecretStr("")
    context: str = Field(default="", max_length=64)
    """SNMP v3 context name (most PDUs: none)."""
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    interval_seconds: float = Field(default=30.0, ge=1, le=3600)
    profile: str = Field(min_length=1, max_length=1024)
    """A shipped profile (apc-rpdu2, raritan-px, generic) or the path of a profile file."""
    outlet_count: int | None = Field(default=None, ge=1, le=512)
    """The generic profile's outlets; for the others, default: every outlet the PDU has."""
    root_oid: str | None = Field(default=None, max_length=256)
    """The generic profile's root OID: outlet N's power is at `<root_oid>.N`."""
    outlets: dict[int, str] = Field(default_factory=dict)
    """Outlet number -> the machine plugged in (`web1`: `host/web1`; or an entity path)."""

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("version"), int):
            return {**data, "version": str(data["version"])}  # `version = 1` in TOML
        return data


class ControlSettings(_Section):
    """The fan controller (docs/CONTROL.md)."""

    target_celsius: float = Field(default=70.0, gt=20, lt=85)
    """CPU temperature auto mode holds with the lowest fan level that can."""
    critical_celsius: float = Field(default=85.0, gt=30, le=110)
    """At this CPU temperature the fans go high at once."""
    telemetry_timeout_seconds: float = Field(default=30.0, gt=0)
    """Without a CPU reading for this long (simulated time), a server's fans go high."""
    source_silence_seconds: float | None = Field(default=None, ge=1, le=3600)
    """Wall-clock seconds without any telemetry at all before the source is declared
    unavailable: `source.unavailable`, its devices UNKNOWN, the fans high. Default (unset):
    `telemetry_timeout_seconds` of the twin's time, i.e. divided by `twin.speed`, and at
    least 5 s."""


# --- alerts and notifiers (docs/ALERTS.md) ------------------------------------------------------


class AlertRuleSettings(_Section):
    """One alert rule (`[[alerts.rules]]`); each field is explained in docs/ALERTS.md."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    metric: str
    """A metric name (a glob such as `*` for absent rules)."""
    entity: str = "**"
    """Entity glob: `*` one path segment, `**` any number."""
    kind: Literal["threshold", "ratio", "rate", "absent"] = "threshold"
    op: Literal[">", ">=", "<", "<="] = ">="
    warning: float | None = None
    critical: float | None = None
    hysteresis: float = Field(default=0.0, ge=0)
    """A level clears only this far back past its threshold (fires >= 75, clears < 72: 3)."""
    for_seconds: float = Field(default=0.0, ge=0)
    """The condition must hold this long before the alert fires."""
    denominator: str | None = None
    """Ratio rules: the metric divided into `metric`, same entity."""
    window_seconds: float = Field(default=60.0, gt=0)
    """Rate rules: the change is measured over this window and given per minute."""
    when: str | None = None
    """A guard on another metric of the same entity, e.g. "fan_level > 0"."""
    is_failure: bool = False
    """While active, the entity's state is FAILED (a stopped fan, a dead disk)."""
    summary: str = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _valid_rule(self) -> AlertRuleSettings:
        self.to_rule()  # raises ValueError saying what is wrong
        return self

    def to_rule(self) -> Rule:
        return Rule(
            name=self.name,
            metric=self.metric,
            entity=self.entity,
            kind=RuleKind(self.kind),
            op=self.op,
            warning=self.warning,
            critical=self.critical,
            hysteresis=self.hysteresis,
            for_s=self.for_seconds,
            denominator=self.denominator,
            window_s=self.window_seconds,
            when=Guard.parse(self.when) if self.when is not None else None,
            is_failure=self.is_failure,
            summary=self.summary,
        )


def default_alert_rules() -> list[AlertRuleSettings]:
    """The rules used unless `[[alerts.rules]]` replaces them (docs/ALERTS.md explains each)."""
    r = AlertRuleSettings
    return [
        r(
            name="memory-used",
            metric="memory_utilization_ratio",
            warning=0.80,
            critical=0.90,
            hysteresis=0.02,
            summary="Memory usage high",
        ),
        r(
            name="disk-used",
            metric="disk_utilization_ratio",
            warning=0.85,
            critical=0.95,
            hysteresis=0.01,
            summary="Disk usage high",
        ),
        r(
            name="disk-free-low",
            metric="disk_free_bytes",
            op="<",
            critical=1024**3,
            hysteresis=64 * 1024**2,
            summary="Less than 1 GiB free on the disk",
        ),
        r(
            name="cpu-busy",
            metric="cpu_utilization_ratio",
            entity="host/*",
            warning=0.90,
            critical=0.98,
            hysteresis=0.05,
            for_seconds=300,
            summary="Host CPU busy for 5 minutes",
        ),
        r(
            name="gpu-temperature",
            metric="gpu_temperature_celsius",
            warning=83,
            critical=90,
            hysteresis=3,
            for_seconds=30,
            summary="GPU temperature high",
        ),
        r(
            name="cpu-temperature",
            metric="cpu_temperature_celsius",
            warning=80,
            critical=90,
            hysteresis=3,
            summary="CPU temperature high",
        ),
        r(
            name="cpu-temperature-rising",
            kind="rate",
            metric="cpu_temperature_celsius",
            op=">",
            warning=5,
            window_seconds=60,
            for_seconds=120,
            summary="CPU temperature rising fast",
        ),
        r(
            name="inlet-temperature-high",
            metric="inlet_temperature_celsius",
            op=">",
            warning=27,
            critical=32,
            hysteresis=0.5,
            for_seconds=60,
            summary="Inlet air above the ASHRAE recommended range (18-27 °C)",
        ),
        r(
            name="inlet-temperature-low",
            metric="inlet_temperature_celsius",
            op="<",
            warning=18,
            hysteresis=0.5,
            for_seconds=60,
            summary="Inlet air below the ASHRAE recommended range (18-27 °C)",
        ),
        r(
            name="inlet-temperature-rising",
            kind="rate",
            metric="inlet_temperature_celsius",
            op=">",
            warning=1 / 3,
            window_seconds=900,
            summary="Inlet air warming faster than ASHRAE's 5 °C in 15 min",
        ),
        r(
            name="fan-stopped",
            metric="fan_rpm",
            op="<",
            critical=100,
            when="fan_level > 0",
            for_seconds=10,
            is_failure=True,
            summary="Fan stopped while commanded on",
        ),
        r(
            name="fan-failure-predicted",
            metric="time_to_failure_seconds",
            op="<",
            warning=24 * 3600,
            critical=2 * 3600,
            hysteresis=1800,
            summary="Fan failure predicted: plan the fan's replacement; "
            "move the load away before it fails",
        ),
        r(
            name="pdu-power-near-capacity",
            kind="ratio",
            metric="pdu_power_watts",
            denominator="pdu_capacity_watts",
            warning=0.90,
            critical=0.98,
            hysteresis=0.02,
            summary="PDU power near its capacity",
        ),
        r(
            name="disk-failed",
            metric="disk_ok",
            op="<",
            critical=0.5,
            is_failure=True,
            summary="Disk failed",
        ),
        r(name="telemetry-absent", kind="absent", metric="*", warning=60, summary="No telemetry"),
    ]


class AlertSettings(_Section):
    """`[alerts]`: the rules, the cooldown, device states and usage."""

    enabled: bool = True
    cooldown_seconds: float = Field(default=300.0, ge=0)
    """A condition back within this time after its alert resolved notifies no one again."""
    rules: list[AlertRuleSettings] = Field(default_factory=default_alert_rules)
    """Replaces the default rules when given; use `extra_rules` to keep them."""
    extra_rules: list[AlertRuleSettings] = Field(default_factory=list)
    """Added to `rules`; one with the name of a rule in `rules` replaces it."""
    unknown_after_seconds: float = Field(default=60.0, gt=0)
    """A device with no telemetry for this long is UNKNOWN."""
    busy_at_ratio: float = Field(default=0.5, ge=0, le=1)
    idle_below_ratio: float = Field(default=0.3, ge=0, le=1)
    history: int = Field(default=1000, ge=1, le=1_000_000)
    """Alert occurrences kept in memory for the WebSocket and the API."""
    notifier_drain_seconds: float = Field(default=5.0, ge=0, le=300)
    """At stop, the time notifiers get to deliver what is queued; what is left is kept in
    the data directory's notification spool and sent at the next start."""
    notifier_spool_max: int = Field(default=10_000, ge=1, le=1_000_000)
    """Notifications the spool keeps at most (the oldest go first)."""

    @model_validator(mode="after")
    def _valid(self) -> AlertSettings:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"alert rule names must be unique; repeated: {repeated}")
        if self.idle_below_ratio > self.busy_at_ratio:
            raise ValueError("idle_below_ratio must not be above busy_at_ratio")
        return self

    def active_rules(self) -> list[AlertRuleSettings]:
        """`rules` with `extra_rules` merged in by name, without the disabled ones."""
        merged = {rule.name: rule for rule in self.rules}
        merged.update({rule.name: rule for rule in self.extra_rules})
        return [rule for rule in merged.values() if rule.enabled]


class IntelligenceSettings(_Section):
    """`[intelligence]`: anomaly events, fan failure predictions and health in `rackwatch
    run` (docs/PREDICTION.md, "In rackwatch run")."""

    enabled: bool = True
    skip_metrics: list[str] | None = None
    """Gauges not scored for anomalies; None: the defaults (uptime, load averages, process
    and session counts, CPU frequency, disk and network rates). Counters, states and fan
    levels are never scored."""
    explain_window_seconds: float = Field(default=600.0, ge=0, le=86_400)
    """An anomaly of a power, temperature, airflow or fan speed that starts this soon after
    its device's load or fan level moved is explained by it and not reported (0: off)."""
    health_interval_seconds: float = Field(default=60.0, ge=0, le=86_400)
    """Sample time between the stored `health_score` samples (0: none are stored)."""
    health_horizon_seconds: float = Field(default=3600.0, gt=0, le=30 * 86_400)
    """How far ahead the predicted health looks."""
    fan_failure_ratio: float = Field(default=0.40, gt=0, lt=1)
    """A fan turning at or below this share of its healthy speed counts as failed."""
    retrain_hours: float = Field(default=3.0, ge=0, le=168)
    """Wall-clock hours between two fits of the residual model from the store (docs/ANOMALY.md,
    "Learned models and retraining"); 0: never retrain (the last saved model is still used)."""
    train_window_hours: float = Field(default=24.0, ge=1, le=168)
    """Hours of raw samples each fit reads, back from the newest one stored (no more than
    `[store] raw_retention_days` keeps)."""
    keep_models: int = Field(default=10, ge=1, le=1000)
    """Model versions kept in `<data_dir>/models/`; older ones are deleted."""

    @model_validator(mode="after")
    def _valid_retrain(self) -> IntelligenceSettings:
        if 0 < self.retrain_hours < 0.1:
            raise ValueError(
                f"retrain_hours = {self.retrain_hours}: use 0 (off) or 0.1 to 168 hours"
            )
        return self


class TimeWindowSettings(_Section):
    """Hours when a notifier is used, in a time zone; start > end crosses midnight."""

    start: dt.time
    end: dt.time
    timezone: str = "UTC"
    """An IANA name such as "Europe/Paris"."""

    @model_validator(mode="after")
    def _valid_window(self) -> TimeWindowSettings:
        self.to_window()
        return self

    def to_window(self) -> TimeWindow:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {self.timezone!r}: use an IANA name such as Europe/Paris"
            ) from exc
        return TimeWindow(self.start, self.end, zone)


class _NotifierSection(_Section):
    name: str | None = None
    """Defaults to the type; give one when two notifiers have the same type."""
    min_level: Literal["info", "warning", "critical"] = "warning"
    entities: list[str] = Field(default_factory=lambda: ["**"], min_length=1)
    window: TimeWindowSettings | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Time allowed to deliver one notification (retries included)."""
    max_pending: int = Field(default=1000, ge=1, le=1_000_000)


class ConsoleNotifierSettings(_NotifierSection):
    type: Literal["console"]


class FileNotifierSettings(_NotifierSection):
    type: Literal["file"]
    path: Path = Path("alerts.log")
    """Relative paths are under data_dir."""
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    backup_count: int = Field(default=5, ge=0, le=1000)


class EmailNotifierSettings(_NotifierSection):
    type: Literal["email"]
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    """Defaults: 587 for starttls, 465 for ssl, 25 for none."""
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str
    to_addrs: list[str] = Field(min_length=1)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _safe(self) -> EmailNotifierSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.security == "none" and self.password is not None:
            raise ValueError(
                "security = 'none' would send the password in clear: use starttls or ssl"
            )
        return self


class _HttpNotifierSection(_NotifierSection):
    url: SecretStr
    """Kept secret: webhook URLs often carry a token (Slack's always does)."""
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0, le=600)
    backoff_max_seconds: float = Field(default=30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _http_url(self) -> _HttpNotifierSection:
        if not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class WebhookNotifierSettings(_HttpNotifierSection):
    type: Literal["webhook"]
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class SlackNotifierSettings(_HttpNotifierSection):
    type: Literal["slack"]
    channel: str | None = None
    username: str | None = "rackwatch"
    icon_emoji: str | None = None


NotifierSettings = Annotated[
    ConsoleNotifierSettings
    | FileNotifierSettings
    | EmailNotifierSettings
    | WebhookNotifierSettings
    | SlackNotifierSettings,
    Field(discriminator="type"),
]


class MqttSettings(_Section):
    """Sensors and fans on an MQTT broker (docs/MQTT.md); `rackwatch run --mqtt URL`."""

    url: str | None = None
    """`mqtt://host[:port]`; unset: no MQTT devices."""
    username: str | None = None
    password: SecretStr | None = None
    prefix: str = Field(default="rackwatch", min_length=1, max_length=128)
    client_id: str = Field(default="", max_length=128)
    """The ingest side's persistent session; default `rackwatch-<hostname>`."""
    command_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    """A fan command the device's state has not confirmed by then is reported (timeout)."""
    discovery_seconds: float = Field(default=2.0, ge=0, le=60)
    """At start, how long the devices' retained capabilities are gathered for the fan
    controller's first layout (devices that announce themselves later join it as they come)."""


class RemoteWriteSettings(_Section):
    """`[remote_write]`: every sample also sent to a TSDB by Prometheus remote write
    (VictoriaMetrics, Mimir, Thanos; docs/REMOTE_WRITE.md). Off without a url."""

    url: SecretStr | None = None
    """`http(s)://host:port/api/v1/write` (it may carry credentials)."""
    batch_samples: int = Field(default=10_000, ge=1, le=1_000_000)
    flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    queue_samples: int = Field(default=2_000_000, ge=1, le=100_000_000)
    """Samples waiting for a TSDB that does not answer; past this the oldest go (counted)."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    backoff_seconds: float = Field(default=0.5, gt=0, le=600)
    backoff_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    drain_seconds: float = Field(default=10.0, gt=0, le=3600)
    """At stop, how long what is queued may still be sent."""
    external_labels: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Such as X-Scope-OrgID (Mimir) or Authorization."""
    nulls: Literal["stale", "skip"] = "stale"
    """A NULL reading: Prometheus' staleness marker (a gap), or nothing sent."""

    @model_validator(mode="after")
    def _valid(self) -> RemoteWriteSettings:
        url = None if self.url is None else self.url.get_secret_value()
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.queue_samples < self.batch_samples:
            raise ValueError("queue_samples must be at least batch_samples")
        return self


class BusSettings(_Section):
    """`[bus]`: what the parts of `rackwatch run` talk through (docs/BUS.md);
    `rackwatch run --bus URL`."""

    url: str = "memory"
    """`memory` (in-process, the default) or `nats://host:port`, a NATS server with JetStream."""
    prefix: str = Field(default="rackwatch", pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    """Before every subject and stream name on the NATS server, so instances can share one."""
    ack_wait_seconds: float = Field(default=30, ge=0.5, le=3600)
    """A message a durable reader took and did not acknowledge (it stopped, it was killed)
    comes again after this long."""
    stream_max_bytes: int = Field(default=1 << 30, ge=1 << 20, le=1 << 50)
    """What each NATS stream (telemetry, events, commands) keeps at most; the oldest go first.
    The server reserves it for the stream, so it must fit in its JetStream storage."""
    stream_max_age_hours: float = Field(default=24, gt=0, le=24 * 365)
    """...and for how long: a reader away longer than this misses what aged out."""
    partitions: int = Field(default=1, ge=1, le=1024)
    """Telemetry partitions on a NATS bus, by rack (`rackwatch worker`, docs/SCALE.md): every
    process of a site must say the same."""

    @model_validator(mode="after")
    def _known_url(self) -> BusSettings:
        if self.url != "memory":
            nats_address(self.url)  # raises ValueError, which pydantic reports with the field
        return self


def nats_address(url: str) -> tuple[str, int]:
    """`(host, port)` of a `nats://host:port` URL; ValueError saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of range
        raise ValueError(f"bus url {url!r}: the port must be a number from 1 to 65535") from exc
    if parts.scheme != "nats":
        raise ValueError(f"bus url {url!r}: use memory or nats://HOST:PORT")
    if not parts.hostname:
        raise ValueError(f"bus url {url!r} names no host: nats://HOST:PORT")
    if port is None or port == 0:
        raise ValueError(f"bus url {url!r} needs a port from 1 to 65535: nats://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"bus url {url!r}: only nats://HOST:PORT, nothing after the port")
    return parts.hostname, port


class InventorySettings(DeclaredInventory):
    """`[inventory]`: sites, rooms, racks, PDUs and machines declared here (`[[inventory.
    machines]]`…) and/or in the TOML file `file` names (docs/INVENTORY.md)."""

    file: Path | None = None


class SiteSettings(_Section):
    """`[site]`: what holds for the whole site."""

    timezone: str = "UTC"
    """The site's IANA time zone (Europe/Paris): its days ("today's" energy, reports) and
    tariff hours."""

    @model_validator(mode="after")
    def _known_zone(self) -> SiteSettings:
        zone_of(self.timezone)
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _every_day() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class TariffPeriodSettings(_Section):
    """`[[energy.periods]]`: a price on some weekdays over local hours [start, end)."""

    name: str = Field(min_length=1, max_length=64)
    price_per_kwh: float = Field(ge=0, le=1000, allow_inf_nan=False)
    days: list[Weekday] = Field(default_factory=_every_day, min_length=1, max_length=7)
    hours: tuple[int, int] = (0, 24)
    """[start, end) in whole local hours; start > end crosses midnight (22, 6)."""

    def to_period(self) -> TariffPeriod:
        return TariffPeriod(self.name, self.price_per_kwh, tuple(self.days), self.hours)

    @model_validator(mode="after")
    def _valid_period(self) -> TariffPeriodSettings:
        self.to_period()
        return self


class EnergySettings(_Section):
    """`[energy]`: the price of energy and, for a site without a facility meter, its PUE
    (docs/ENERGY.md)."""

    price_per_kwh: float = Field(default=0.20, ge=0, le=1000, allow_inf_nan=False)
    """The price of the hours no period names."""
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    periods: list[TariffPeriodSettings] = Field(default_factory=list, max_length=64)
    pue: float | None = Field(default=None, ge=1.0, le=3.0, allow_inf_nan=False)
    """Facility over IT energy, for a site without a facility meter (the twin measures its
    own); real rooms are 1.1-1.8."""

    @model_validator(mode="after")
    def _periods_apart(self) -> EnergySettings:
        self.tariff("UTC")  # two periods sharing an hour are refused here
        return self

    def tariff(self, timezone: str) -> Tariff:
        periods = tuple(p.to_period() for p in self.periods)
        return Tariff(self.price_per_kwh, self.currency, periods, timezone)


ReportFormat = Literal["html", "json", "csv"]


def _every_format() -> list[ReportFormat]:
    return ["html", "json", "csv"]


class ReportsSettings(_Section):
    """`[reports]`: the daily, weekly and monthly reports `rackwatch run` makes and archives
    in `<data_dir>/reports` (docs/REPORTS.md), in `[site] timezone`."""

    enabled: bool = True
    """Make them on schedule in `rackwatch run` (`rackwatch report` works either way)."""
    formats: list[ReportFormat] = Field(default_factory=_every_format, min_length=1, max_length=3)
    keep: int = Field(default=100, ge=1, le=100_000)
    """Reports of each period kind kept (100 days, 100 weeks, 100 months); older are deleted."""
    at: dt.time = dt.time(0, 5)
    """When a period's report is made, on the day after it ends (local time)."""

    @model_validator(mode="after")
    def _distinct_formats(self) -> ReportsSettings:
        if len(set(self.formats)) != len(self.formats):
            raise ValueError(f"formats lists one twice: {self.formats}")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RACKWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("rackwatch-data")
    control: ControlSettings = ControlSettings()
    twin: TwinSettings = TwinSettings()
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    host: HostSettings = HostSettings()
    scrape: list[ScrapeSettings] = Field(default_factory=list)
    pdus: list[PduSettings] = Field(default_factory=list)
    """PDUs polled over SNMP (`[[pdus]]`, docs/SNMP.md)."""
    alerts: AlertSettings = AlertSettings()
    intelligence: IntelligenceSettings = IntelligenceSettings()
    inventory: InventorySettings = InventorySettings()
    mqtt: MqttSettings = MqttSettings()
    remote_write: RemoteWriteSettings = RemoteWriteSettings()
    bus: BusSettings = BusSettings()
    notifiers: list[NotifierSettings] = Field(default_factory=list)
    """Where alerts go (`[[notifiers]]` with type console, file, email, webhook or slack)."""
    site: SiteSettings = SiteSettings()
    energy: EnergySettings = EnergySettings()
    reports: ReportsSettings = ReportsSettings()

    @model_validator(mode="after")
    def _scrapes_within_offline_after(self) -> Settings:
        given = self.host.offline_after_seconds
        if given is None:
            return self  # the default outlasts them (`offline_after_s`)
        for target in self.scrape:
            what = f"the [[scrape]] interval_seconds of {target.url}"
            _check_offline_after(given, target.interval_seconds, what)
        for pdu in self.pdus:
            what = f"the [[pdus]] interval_seconds of {pdu.name}"
            _check_offline_after(given, pdu.interval_seconds, what)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (pydantic's signature)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:  # see load_settings
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise ConfigError saying which value is wrong and where it came from.

    `overrides` are nested dicts of command-line values; None values are ignored.
    """
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config} does not exist: check the --config path")
        try:
            tomllib.loads(config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from exc
    from_file = Settings
    if config is not None:
        # The file is a setting of this load only: a subclass carries it, no global does.
        class FromFile(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

        from_file = FromFile
    try:
        return from_file(**_drop_none(overrides))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}".removeprefix(": ")
            for err in exc.errors()
        )
        where = f" (from {config}, RACKWATCH_* variables or options)" if config else ""
        raise ConfigError(f"invalid settings{where}: {problems}") from exc


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                cleaned[key] = nested
        elif value is not None:
            cleaned[key] = value
    return cleaned


# --- converters for the wiring ---------------------------------------------------------------


DEFAULT_OFFLINE_AFTER_S = 60.0


def offline_after_s(settings: Settings) -> float:
    """`[host] offline_after_seconds`, or by default 60 s, or twice the longest collection
    interval (this host's, a scrape's, a PDU's) when that is longer."""
    given = settings.host.offline_after_seconds
    if given is not None:
        return given
    intervals = [settings.host.interval_seconds, *(s.interval_seconds for s in settings.scrape)]
    intervals += [p.interval_seconds for p in settings.pdus]
    return max(DEFAULT_OFFLINE_AFTER_S, 2 * max(intervals))


def build_alert_rules(alerts: AlertSettings) -> list[Rule]:
    """The engine's rules from `[alerts]` (defaults, replaced or extended, minus disabled)."""
    return [rule.to_rule() for rule in alerts.active_rules()]


def energy_config(settings: Settings) -> EnergyConfig:
    """`[energy]` and `[site] timezone` as the energy accounting takes them (no live
    accountant: the wiring adds its own)."""
    return EnergyConfig(
        tariff=settings.energy.tariff(settings.site.timezone), pue=settings.energy.pue
    )
