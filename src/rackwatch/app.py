"""Wiring: builds every part from the Settings. The only module that knows them all.

`build_services` gives the long-running parts of `rackwatch run`; `run_live` runs them on one
event loop; `simulate` is the bulk path of `rackwatch simulate` (no bus: the twin writes blocks
straight into the store as fast as it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from aiomqtt import MqttError
from fastapi import FastAPI
from pydantic import ValidationError

from rackwatch import inventory_config
from rackwatch.api import ApiContext, create_app
from rackwatch.api.prometheus import watch_writer
from rackwatch.api.routes.ingest import SOURCE as AGENT_SOURCE
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus, subjects
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.control import FanController, FanLayout, FanPolicy, SafetyLimits
from rackwatch.engine.control.group import ControllerGroup, FanControl
from rackwatch.engine.energy import EnergyConfig, LiveEnergy, Membership
from rackwatch.engine.intelligence import DEFAULT_SKIP, Intelligence, IntelligenceConfig
from rackwatch.engine.intelligence import SOURCE as INTELLIGENCE_SOURCE
from rackwatch.engine.intelligence.models import ModelStore
from rackwatch.engine.intelligence.retrain import ModelUser, Retrainer
from rackwatch.engine.live import LiveState, feed
from rackwatch.engine.notifiers import (
    SPOOL_FILE,
    NotificationFilter,
    NotificationSpool,
    Notifier,
    NotifierRoute,
)
from rackwatch.engine.predict import FanWearParams
from rackwatch.engine.remote_write import RemoteWriteSink
from rackwatch.engine.reports import (
    EnergyOptions,
    ReportArchive,
    Reporter,
    ReportSchedule,
    account_energy,
    zone_of,
)
from rackwatch.engine.retention import RetentionRunner
from rackwatch.engine.states import SilencePolicy
from rackwatch.engine.writer import StoreWriter
from rackwatch.errors import ConfigError
from rackwatch.mcp_server.http import mount as mount_mcp
from rackwatch.model import SeriesKey, SeriesRegistry, Severity
from rackwatch.settings import (
    DAY_S,
    ConsoleNotifierSettings,
    EmailNotifierSettings,
    FileNotifierSettings,
    NotifierSettings,
    Settings,
    SlackNotifierSettings,
    WebhookNotifierSettings,
    build_alert_rules,
    energy_config,
    offline_after_s,
)
from rackwatch.sources.host.loop import Collection, CollectionLoop
from rackwatch.sources.host.machine import host_collectors, host_name
from rackwatch.sources.mqtt import SOURCE as MQTT_SOURCE
from rackwatch.sources.mqtt import BrokerAddress, MqttSource
from rackwatch.sources.mqtt.source import discover_blocking
from rackwatch.sources.mqtt.topics import validate_prefix
from rackwatch.sources.poller import PacedPoller
from rackwatch.sources.readings import InventoryItem, to_batch
from rackwatch.sources.scrape import Scraper, ScrapeTarget
from rackwatch.sources.scrape_loop import SOURCE as SCRAPE_SOURCE
from rackwatch.sources.scrape_loop import ScrapeLoop
from rackwatch.sources.snmp.client import SnmpTarget
from rackwatch.sources.snmp.poller import SOURCE as SNMP_SOURCE
from rackwatch.sources.snmp.poller import PduPoller, PduTarget, machine_entity, pdu_entity
from rackwatch.sources.snmp.profiles import ProfileError, load_profile
from rackwatch.sources.twin import TwinSource
from rackwatch.store.base import EntityRecord, Retention, Store
from rackwatch.store.duckdb import (
    DB_FILE,
    DuckDBStore,
    private_dir,
    remove_store,
    store_disk_bytes,
)
from rackwatch.tokens import TOKENS_FILE, TokenStore
from rackwatch.twin import (
    DEFAULT_LIFETIMES,
    Lifetime,
    Twin,
    draw_random_faults,
)

if TYPE_CHECKING:
    from rackwatch.bus.nats import NatsBus
    from rackwatch.bus.nats import Retention as NatsRetention
    from rackwatch.bus.spaced import SpacedBus

log = logging.getLogger(__name__)

AppBus: TypeAlias = "MemoryBus | NatsBus"
"""The bus of `rackwatch run`: `[bus] url` (docs/BUS.md)."""
AnyBus: TypeAlias = "MemoryBus | NatsBus | SpacedBus"
"""What the parts are built on: `rackwatch run`'s bus, or a worker's (`rackwatch.worker`)."""

STORE_FILE = DB_FILE
DAY_MS = DAY_S * 1000


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_FILE


LIVE_FLUSH_ROWS = 500_000
"""The head of `rackwatch run`'s store: at most this many samples (about 10 MB, and as much
again while flushing) or a minute of writes, whichever comes first; sorted and folded into the
rollups an eighth at a time. Bulk loads use the store's larger defaults, which compress a
little better and ingest faster."""


LIVE_DUCKDB_MEMORY = "128MB"
"""DuckDB's buffer pool in `rackwatch run`: it keeps the blocks it wrote or read until this
fills (by default 80 % of the machine's memory), so without a bound a long run's resident
memory would grow with its database; queries stream and spill beyond it."""


def open_store(
    settings: Settings,
    registry: SeriesRegistry,
    data_dir: Path | None = None,
    *,
    live: bool = False,
    synced_writes: bool = False,
) -> Store:
    """The store of `[store] url`: DuckDB in the data directory, or a PostgreSQL schema."""
    directory = data_dir or settings.data_dir
    private_dir(directory)
    s = settings.store
    retention = Retention(
        raw_ms=int(s.raw_retention_days * DAY_MS),
        m1_ms=int(s.minute_retention_days * DAY_MS),
        h1_ms=int(s.hour_retention_days * DAY_MS),
    )
    if s.url != "duckdb":
        try:
            from rackwatch.store.postgres import PostgresStore  # psycopg only where it is used
        except ImportError as exc:
            raise ConfigError(
                f"--store {s.url.split('@')[-1]} needs psycopg: pip install 'rackwatch[postgres]'"
            ) from exc

        # A store worker acknowledges what write() returned: then the commit waits for disk.
        return PostgresStore(s.url, registry, retention=retention, synchronous_commit=synced_writes)
    if live:
        return DuckDBStore(
            store_path(directory),
            registry,
            retention=retention,
            # A store worker acknowledges what write() returned: nothing may wait in memory.
            wal_sync_seconds=0 if synced_writes else 1.0,
            flush_rows=LIVE_FLUSH_ROWS,
            consolidate_rows=LIVE_FLUSH_ROWS // 8,
            duckdb_config={"memory_limit": LIVE_DUCKDB_MEMORY},
        )
    return DuckDBStore(store_path(directory), registry, retention=retention)


def build_twin(settings: Settings, start_ms: int, horizon_s: float = 365 * DAY_S) -> Twin:
    """The scenario's twin; with `random_fault_mtbf_days`, plus failures drawn from lifetimes
    over `horizon_s` (each one labelled like a scheduled fault)."""
    t = settings.twin
    twin = Twin.from_scenario(t.scenario, clusters=t.clusters, seed=t.seed, start_ms=start_ms)
    if t.random_fault_mtbf_days is not None:
        mtbf_s = t.random_fault_mtbf_days * DAY_S
        lifetimes = {k: Lifetime(mtbf_s, life.shape) for k, life in DEFAULT_LIFETIMES.items()}
        for fault in draw_random_faults(twin.topology, t.seed, horizon_s, lifetimes):
            twin.inject(
                fault.kind,
                fault.entity,
                fault.params,
                start_ms=start_ms + int(fault.offset_s * 1000),
            )
    return twin


def newest_instant(store: Store, keys: Iterable[SeriesKey] | None = None) -> int | None:
    """The newest stored instant of the series `keys` (None: of any series), if any."""
    latest = store.latest()
    if keys is None:
        ts = latest.ts
    else:
        wanted = set(keys)
        ts = latest.ts[[key in wanted for key in latest.keys]] if len(latest.ts) else latest.ts
    return int(ts.max()) if len(ts) else None


def continue_after(store: Store, twin: Twin) -> int | None:
    """The first instant after the twin's data already stored (None when there is none):
    a restarted twin starts there, never over it."""
    last = newest_instant(store, twin.series_keys)
    return None if last is None else last + twin.step_ms


def inventory_records(twin: Twin) -> list[EntityRecord]:
    return records_of(twin.inventory())


def records_of(items: Sequence[InventoryItem]) -> list[EntityRecord]:
    """Inventory items (`{"entity", "kind", <attributes>}`) as the store keeps them."""
    records = []
    for item in items:
        attributes = {k: v for k, v in item.items() if k not in ("entity", "kind")}
        records.append(EntityRecord(item["entity"], item["kind"], attributes))
    return records


def scrape_targets(settings: Settings) -> list[ScrapeTarget]:
    """The `[[scrape]]` targets, checked (ConfigError for one that cannot be scraped)."""
    targets = []
    for section in settings.scrape:
        try:
            targets.append(
                ScrapeTarget(
                    url=section.url,
                    name=section.name,
                    interval_s=section.interval_seconds,
                    timeout_s=section.timeout_seconds,
                    labels=section.labels,
                    entity_labels=None
                    if section.entity_labels is None
                    else tuple(section.entity_labels),
                    max_series=section.max_series,
                )
            )
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(f"scrape target {section.url}: {problems}") from None
    return targets


def build_scrapes(
    targets: Sequence[ScrapeTarget], registry: SeriesRegistry, bus: AppBus, store: Store
) -> list[ScrapeLoop]:
    """A loop per target: its readings on the bus (`telemetry.scrape`), its inventory item in
    the store."""

    async def keep_inventory(items: list[InventoryItem]) -> None:
        await asyncio.to_thread(store.upsert_inventory, records_of(items))

    return [
        ScrapeLoop(Scraper(target), registry, bus, on_inventory=keep_inventory)
        for target in targets
    ]


def declared_outlets(settings: Settings) -> dict[str, dict[int, str]]:
    """The declared inventory's outlet -> machine (`[[machines]] outlets = ["<pdu>:<n>"]`),
    by PDU path."""
    found: dict[str, dict[int, str]] = {}
    for machine in inventory_config.declared(settings)[0].machines:
        for ref in machine.outlets:
            pdu, _, number = ref.rpartition(":")
            found.setdefault(pdu, {})[int(number)] = machine.path
    return found


def pdu_targets(settings: Settings) -> list[PduTarget]:
    """The `[[pdus]]`, checked (ConfigError naming the PDU for one that cannot be polled).
    Which machine each outlet feeds: its `outlets`, and the declared inventory's machines."""
    targets: list[PduTarget] = []
    declared = declared_outlets(settings) if settings.pdus else {}
    for pdu in settings.pdus:
        try:
            machines = dict(declared.get(pdu_entity(pdu.name), {}))
            for number, name in pdu.outlets.items():
                given = machine_entity(name)
                if machines.get(number, given) != given:
                    raise ValueError(
                        f"outlet {number} feeds {given} here but {machines[number]} in the "
                        "declared inventory"
                    )
                machines[number] = given
            snmp = SnmpTarget(
                host=pdu.host,
                port=pdu.port,
                version=pdu.version,
                community=pdu.community.get_secret_value(),
                user=pdu.user,
                auth_protocol=pdu.auth_protocol,
                auth_key=pdu.auth_key.get_secret_value(),
                priv_protocol=pdu.priv_protocol,
                priv_key=pdu.priv_key.get_secret_value(),
                context=pdu.context,
                timeout_s=pdu.timeout_seconds,
                retries=pdu.retries,
            )
            target = PduTarget(
                name=pdu_entity(pdu.name),
                snmp=snmp,
                profile=load_profile(pdu.profile).resolve(pdu.root_oid),
                interval_s=pdu.interval_seconds,
                outlet_count=pdu.outlet_count,
                machines=machines,
            )
        except (ValueError, ProfileError) as e:
            raise ConfigError(f"[[pdus]] {pdu.name}: {e}") from None
        if any(t.name == target.name for t in targets):
            raise ConfigError(f"two [[pdus]] are named {pdu.name!r}: give each its own name")
        targets.append(target)
    return targets


def build_pdus(
    targets: Sequence[PduTarget], registry: SeriesRegistry, bus: AppBus, store: Store
) -> PduPoller | None:
    """The PDUs' poller (None without `[[pdus]]`): readings on `telemetry.snmp`, the PDUs and
    their outlets in the store's inventory."""
    if not targets:
        return None

    async def keep_inventory(items: list[InventoryItem]) -> None:
        await asyncio.to_thread(store.upsert_inventory, records_of(items))

    return PduPoller(targets, registry, bus, on_inventory=keep_inventory)


def build_host(
    settings: Settings, registry: SeriesRegistry, bus: AppBus, store: Store
) -> CollectionLoop | None:
    """This machine as a source of `rackwatch run`: its collections on the bus
    (`telemetry.host`), its inventory in the store; None when `[host] enabled` is off."""
    if not settings.host.enabled:
        return None
    name = host_name(settings.host.name)
    loop = CollectionLoop(host_collectors(name), interval_s=settings.host.interval_seconds)

    async def publish(collection: Collection) -> None:
        batch = to_batch(collection.readings, registry, collection.ts_ms)
        if len(batch):
            await bus.publish(subjects.telemetry(HOST_SOURCE), batch)

    async def keep_inventory(items: list[InventoryItem]) -> None:
        await asyncio.to_thread(store.upsert_inventory, records_of(items))

    loop.listeners.append(publish)
    loop.inventory_listeners.append(keep_inventory)
    return loop


@dataclass
class Services:
    """The parts of `rackwatch run`, built and connected, not yet started."""

    settings: Settings
    registry: SeriesRegistry
    store: Store
    bus: AppBus
    live: LiveState
    writer: StoreWriter
    twin: Twin | None
    """The simulated room (None: `--no-twin`, real machines only)."""
    poller: PacedPoller | None
    api: FastAPI
    alerts: AlertEngine
    controller: FanController | None
    """Closed-loop fan control of the twin's fans (None without the twin)."""
    tokens: TokenStore
    retention: RetentionRunner
    host: CollectionLoop | None = None
    """This machine, collected beside the twin (None: `--no-host`)."""
    scrapes: list[ScrapeLoop] = field(default_factory=list)
    """The Prometheus endpoints scraped (`[[scrape]]`, `--scrape`)."""
    pdus: PduPoller | None = None
    """The PDUs polled over SNMP (`[[pdus]]`; None without any)."""
    resumed_at_ms: int | None = None
    """Where the twin's clock starts when the data directory already held its data (after the
    last stored instant, so that nothing overlaps); None when it starts now."""
    intelligence: Intelligence | None = None
    """Anomaly events, fan failure predictions, health (None: `[intelligence] enabled` off)."""
    retrainer: Retrainer | None = None
    """Loads the last residual model and retrains it on schedule (None without intelligence)."""
    mqtt: MqttSource | None = None
    """Sensors and fans on an MQTT broker (`--mqtt`, `[mqtt] url`; docs/MQTT.md)."""
    mqtt_controller: FanController | None = None
    """Closed-loop control of the MQTT devices' fans (later ones join it: `_growing`)."""
    reporter: Reporter | None = None
    """Makes and archives the reports (`POST /reports`, the schedule)."""
    report_schedule: ReportSchedule | None = None
    """The daily, weekly and monthly reports at `[reports] at` (None: `enabled` off)."""
    remote_write: RemoteWriteSink | None = None
    """Every sample to a TSDB by Prometheus remote write (`[remote_write]`; None: no url)."""

    def close(self) -> None:
        self.store.close()


def _console_notifier(_section: ConsoleNotifierSettings, name: str, _data_dir: Path) -> Notifier:
    from rackwatch.engine.notifiers.console import ConsoleNotifier

    return ConsoleNotifier(name=name)


def _file_notifier(section: FileNotifierSettings, name: str, data_dir: Path) -> Notifier:
    from rackwatch.engine.notifiers.file import FileNotifier

    path = section.path if section.path.is_absolute() else data_dir / section.path
    return FileNotifier(
        path, max_bytes=section.max_bytes, backup_count=section.backup_count, name=name
    )


def _email_notifier(section: EmailNotifierSettings, name: str, _data_dir: Path) -> Notifier:
    from rackwatch.engine.notifiers.email import EmailNotifier

    return EmailNotifier(
        section.host,
        port=section.port,
        security=section.security,
        username=section.username,
        password=section.password.get_secret_value() if section.password else None,
        from_addr=section.from_addr,
        to_addrs=section.to_addrs,
        timeout_s=section.smtp_timeout_seconds,
        name=name,
    )


def _webhook_notifier(section: WebhookNotifierSettings, name: str, _data_dir: Path) -> Notifier:
    from rackwatch.engine.notifiers.webhook import WebhookNotifier

    return WebhookNotifier(
        section.url.get_secret_value(),
        headers={key: value.get_secret_value() for key, value in section.headers.items()},
        timeout_s=section.request_timeout_seconds,
        retries=section.retries,
        backoff_s=section.backoff_seconds,
        backoff_max_s=max(section.backoff_max_seconds, section.backoff_seconds),
        name=name,
    )


def _slack_notifier(section: SlackNotifierSettings, name: str, _data_dir: Path) -> Notifier:
    from rackwatch.engine.notifiers.slack import SlackNotifier

    return SlackNotifier(
        section.url.get_secret_value(),
        channel=section.channel,
        username=section.username,
        icon_emoji=section.icon_emoji,
        timeout_s=section.request_timeout_seconds,
        retries=section.retries,
        backoff_s=section.backoff_seconds,
        backoff_max_s=max(section.backoff_max_seconds, section.backoff_seconds),
        name=name,
    )


NOTIFIER_FACTORIES: dict[type[Any], Callable[[Any, str, Path], Notifier]] = {
    ConsoleNotifierSettings: _console_notifier,
    FileNotifierSettings: _file_notifier,
    EmailNotifierSettings: _email_notifier,
    WebhookNotifierSettings: _webhook_notifier,
    SlackNotifierSettings: _slack_notifier,
}
"""How each `[[notifiers]]` type is built (a new type adds a settings class and an entry)."""


def build_notifier_routes(notifiers: list[NotifierSettings], data_dir: Path) -> list[NotifierRoute]:
    """The engine's notifier routes from `[[notifiers]]`; relative file paths go under
    `data_dir`. Raises ConfigError if two notifiers share a name."""
    routes = []
    names: set[str] = set()
    for section in notifiers:
        name = section.name or section.type
        if name in names:
            raise ConfigError(
                f"two notifiers are named {name!r}: give each [[notifiers]] entry a unique name"
            )
        names.add(name)
        routes.append(
            NotifierRoute(
                NOTIFIER_FACTORIES[type(section)](section, name, data_dir),
                NotificationFilter(
                    min_level=Severity[section.min_level.upper()],
                    entities=tuple(section.entities),
                    window=section.window.to_window() if section.window is not None else None,
                ),
                timeout_s=section.timeout_seconds,
                max_pending=section.max_pending,
            )
        )
    return routes


def build_alert_engine(
    settings: Settings, bus: AnyBus, registry: SeriesRegistry, *, publishes: bool = True
) -> AlertEngine:
    """The `[alerts]` engine; `publishes=False`: a shadow, for a process that reads alerts
    and states while another owns their events and notifications (AlertEngine)."""
    a = settings.alerts
    return AlertEngine(
        bus,
        registry,
        build_alert_rules(a) if a.enabled else [],
        build_notifier_routes(settings.notifiers, settings.data_dir),
        cooldown_s=a.cooldown_seconds,
        unknown_after_s=a.unknown_after_seconds,
        busy_at_ratio=a.busy_at_ratio,
        idle_below_ratio=a.idle_below_ratio,
        history=a.history,
        silence=silence_policy(settings),
        source_timeouts=dict.fromkeys(REAL_SOURCES, offline_after_s(settings)),
        spool=NotificationSpool(settings.data_dir / SPOOL_FILE, max_items=a.notifier_spool_max),
        drain_s=a.notifier_drain_seconds,
        derived_sources=(INTELLIGENCE_SOURCE,),
        publishes=publishes,
    )


def build_intelligence(
    settings: Settings, bus: AnyBus, registry: SeriesRegistry, alerts: AlertEngine
) -> Intelligence | None:
    """The `[intelligence]` consumer (None when disabled): it reads the alert engine's open
    alerts and device states for the health."""
    i = settings.intelligence
    if not i.enabled:
        return None
    config = IntelligenceConfig(
        skip_metrics=DEFAULT_SKIP if i.skip_metrics is None else tuple(i.skip_metrics),
        explain_window_s=i.explain_window_seconds,
        fan_wear=FanWearParams(failure_ratio=i.fan_failure_ratio),
        health_horizon_s=i.health_horizon_seconds,
        health_interval_s=i.health_interval_seconds,
    )
    return Intelligence(bus, registry, config, alerts=alerts)


MODELS_DIR = "models"
"""Under the data directory: the residual model's versions (`ModelStore`)."""


def build_energy(
    settings: Settings, registry: SeriesRegistry, store: Store, live: LiveState
) -> EnergyConfig:
    """`[energy]` and `[site]` with a live accountant that counts every batch the live state
    takes (racks and rooms from the inventory as it is at start)."""
    config = energy_config(settings)
    accountant = LiveEnergy(
        registry, config.tariff, pue=config.pue, membership=Membership.of(store.inventory())
    )
    live.listen(accountant.update)
    return dataclasses.replace(config, live=accountant)


def build_retrainer(settings: Settings, store: Store, user: ModelUser) -> Retrainer:
    """The residual model's retraining (`[intelligence] retrain_hours` 0: only the last saved
    model is loaded), its versions in `<data_dir>/models/`."""
    i = settings.intelligence
    models = ModelStore(settings.data_dir / MODELS_DIR, keep=i.keep_models)
    interval_s = None if i.retrain_hours == 0 else i.retrain_hours * 3600
    return Retrainer(
        store, models, user, interval_s=interval_s, window_s=i.train_window_hours * 3600
    )


REPORTS_DIR = "reports"
"""Under the data directory: the report archive (docs/REPORTS.md)."""


def build_reporter(settings: Settings, store: Store) -> Reporter:
    """The reports of `[reports]`, in `[site] timezone`, with the energy and cost of
    `[energy]` (`rackwatch run` and `rackwatch report` alike)."""
    energy = energy_config(settings)
    return Reporter(
        store,
        ReportArchive(settings.data_dir / REPORTS_DIR),
        zone_of(settings.site.timezone),
        formats=tuple(settings.reports.formats),
        keep=settings.reports.keep,
        accountant=account_energy(EnergyOptions(energy.tariff, energy.pue)),
    )


SETTLE_S = 10.0
"""At stop, how long the intelligence may take to score what it has received."""
HOST_SOURCE = "host"
REAL_SOURCES = (HOST_SOURCE, AGENT_SOURCE, SCRAPE_SOURCE, MQTT_SOURCE, SNMP_SOURCE)
"""The sources of real machines: on the wall clock, offline after `[host]
offline_after_seconds` whatever the twin's speed (the twin's silence timeout is divided by it)."""


def silence_policy(settings: Settings) -> SilencePolicy:
    """When the twin counts as silent on the wall clock: `[control] source_silence_seconds`,
    else the controller's telemetry timeout in twin time (divided by the speed, at least 5 s)."""
    c, speed = settings.control, settings.twin.speed
    if c.source_silence_seconds is not None:
        return SilencePolicy(c.source_silence_seconds, speed)
    return SilencePolicy.for_speed(c.telemetry_timeout_seconds, speed)


def build_controller(
    settings: Settings,
    bus: AnyBus,
    registry: SeriesRegistry,
    twin: Twin | None,
    *,
    inventory: Sequence[InventoryItem] = (),
    source: str = "twin",
) -> FanController:
    """The twin's fan controller, or (`twin` None) one for `source`'s devices in `inventory`
    (real devices: silence measured on the wall clock at speed 1)."""
    c = settings.control
    policy = FanPolicy(
        target_c=c.target_celsius,
        safety=SafetyLimits(
            critical_c=c.critical_celsius, telemetry_timeout_s=c.telemetry_timeout_seconds
        ),
    )
    items = twin.inventory() if twin is not None else list(inventory)
    silence = (
        silence_policy(settings)
        if twin is not None
        else SilencePolicy.for_speed(c.telemetry_timeout_seconds, 1.0)
    )
    return FanController(
        bus,
        FanLayout.from_inventory(items),
        registry,
        policy=policy,
        source=source,
        silence=silence,
    )


def mqtt_broker(settings: Settings) -> tuple[BrokerAddress, str] | None:
    """The `[mqtt]` broker and topic prefix, checked (ConfigError); None without a URL."""
    m = settings.mqtt
    if m.url is None:
        return None
    try:
        address = BrokerAddress.parse(m.url)
        prefix = validate_prefix(m.prefix)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if m.username is not None:
        password = None if m.password is None else m.password.get_secret_value()
        address = dataclasses.replace(address, username=m.username, password=password)
    return address, prefix


def build_mqtt(
    settings: Settings, registry: SeriesRegistry, bus: AppBus, store: Store
) -> tuple[MqttSource | None, list[InventoryItem]]:
    """The `[mqtt]` source (None without a URL) and the devices announced at start (their
    retained capabilities, gathered for `discovery_seconds`; none if the broker is away: the
    source keeps trying, and the controller takes the devices as they announce themselves)."""
    broker = mqtt_broker(settings)
    if broker is None:
        return None, []
    address, prefix = broker
    m = settings.mqtt

    async def keep_inventory(items: list[InventoryItem]) -> None:
        await asyncio.to_thread(store.upsert_inventory, records_of(items))

    source = MqttSource(
        address,
        registry,
        bus,
        prefix=prefix,
        client_id=m.client_id or f"rackwatch-{host_name(None)}"[:128],
        command_timeout_s=m.command_timeout_seconds,
        on_inventory=keep_inventory,
    )
    items: list[InventoryItem] = []
    if m.discovery_seconds > 0:
        try:
            items = discover_blocking(address, prefix=prefix, wait_s=m.discovery_seconds)
        except MqttError as exc:
            log.warning("MQTT broker %s unreachable at start (%s)", address.display, exc)
        store.upsert_inventory(records_of(items))
    return source, items


def fan_api_controller(*controllers: FanController | None) -> FanControl | None:
    """What the fan API drives: the one controller, or a group of the twin's and the MQTT
    devices' (each target goes to the controller that drives it)."""
    running = [c for c in controllers if c is not None]
    if len(running) > 1:
        return ControllerGroup(running)
    return running[0] if running else None


def _growing(
    keep: Callable[[list[InventoryItem]], Awaitable[None]] | None, controller: FanController
) -> Callable[[list[InventoryItem]], Awaitable[None]]:
    """The MQTT source's inventory listener: store the devices, and hand the fans of those
    that announced themselves after the start to the controller (on its event loop)."""

    async def listener(items: list[InventoryItem]) -> None:
        if keep is not None:
            await keep(items)
        controller.grow(items)

    return listener


def ensure_control_token(settings: Settings) -> Path | None:
    """On the first run, create a `control` token and write it to a private file in the data
    directory; return that file's path (None when tokens already exist)."""
    tokens = TokenStore(settings.data_dir / TOKENS_FILE)
    if tokens.list():
        return None
    secret, _info = tokens.create("control", name="created by the first rackwatch run")
    path = settings.data_dir / "control-token.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    return path


def build_services(settings: Settings, *, start_ms: int | None = None) -> Services:
    targets = scrape_targets(settings)  # a wrong one is refused before anything is written
    mqtt_broker(settings)  # likewise
    pdus = pdu_targets(settings)
    registry = SeriesRegistry()
    store = open_store(settings, registry, live=True)
    try:
        twin, resume = _start_twin(settings, store, start_ms)
        inventory_config.sync(settings, store, int(time.time() * 1000))  # declared inventory
        retention = RetentionRunner(store, settings.store.retention_interval_seconds)
        bus = build_bus(settings)
        poller = None
        controller = None
        if twin is not None:
            store.upsert_inventory(inventory_records(twin))
            source = TwinSource(twin, registry)
            poller = PacedPoller(source, bus, step_s=twin.step_s, speed=settings.twin.speed)
            controller = build_controller(settings, bus, registry, twin)
        mqtt, mqtt_items = build_mqtt(settings, registry, bus, store)
        mqtt_controller = None
        if mqtt is not None:
            mqtt_controller = build_controller(
                settings, bus, registry, None, inventory=mqtt_items, source=MQTT_SOURCE
            )
            mqtt.on_inventory = _growing(mqtt.on_inventory, mqtt_controller)
        live = LiveState(len(registry))
        energy = build_energy(settings, registry, store, live)
        alerts = build_alert_engine(settings, bus, registry)
        intelligence = build_intelligence(settings, bus, registry, alerts)
        retrainer = None if intelligence is None else build_retrainer(settings, store, intelligence)
        reporter = build_reporter(settings, store)
        tokens = TokenStore(settings.data_dir / TOKENS_FILE)
        api = create_app(
            ApiContext(
                store=store,
                registry=registry,
                live=live,
                bus=bus,
                feeds_live=False,  # run_pipeline keeps it
                scenario=None if twin is None else twin.name,
                ws_client_limit=settings.server.ws_client_limit,
                ws_send_timeout_s=settings.server.ws_send_timeout_seconds,
                ingest_series_limit=settings.server.ingest_series_limit,
                bus_queue_depth=lambda: bus.pending,
                alerts=alerts,
                controller=fan_api_controller(controller, mqtt_controller),
                tokens=tokens,
                open_reads_on_loopback=settings.server.open_reads_on_loopback,
                retention=retention,
                control_source=None if twin is None else "twin",
                host_offline_after_s=offline_after_s(settings),
                intelligence=intelligence,
                energy=energy,
                reports=reporter,
            )
        )
        writer = StoreWriter(bus, store)
        watch_writer(api, writer)  # its counters in /metrics and GET /status
        mount_mcp(api, host=settings.server.host)  # MCP at /mcp (docs/MCP.md)
        host = build_host(settings, registry, bus, store)
        scrapes = build_scrapes(targets, registry, bus, store)
        pdu_poller = build_pdus(pdus, registry, bus, store)
        return Services(
            settings=settings,
            registry=registry,
            store=store,
            bus=bus,
            live=live,
            writer=writer,
            twin=twin,
            poller=poller,
            api=api,
            alerts=alerts,
            controller=controller,
            tokens=tokens,
            retention=retention,
            host=host,
            scrapes=scrapes,
            pdus=pdu_poller,
            resumed_at_ms=resume,
            intelligence=intelligence,
            retrainer=retrainer,
            mqtt=mqtt,
            mqtt_controller=mqtt_controller,
            reporter=reporter,
            report_schedule=ReportSchedule(reporter, at=settings.reports.at)
            if settings.reports.enabled
            else None,
            remote_write=build_remote_write(settings, registry, bus),
        )
    except BaseException:
        store.close()
        raise


def build_remote_write(
    settings: Settings, registry: SeriesRegistry, bus: AnyBus
) -> RemoteWriteSink | None:
    """The `[remote_write]` sink of every sample (None without a url)."""
    rw = settings.remote_write
    if rw.url is None:
        return None
    try:
        return RemoteWriteSink(
            bus,
            registry,
            rw.url.get_secret_value(),
            external_labels=rw.external_labels,
            headers={k: v.get_secret_value() for k, v in rw.headers.items()},
            nulls=rw.nulls,
            batch_samples=rw.batch_samples,
            flush_seconds=rw.flush_seconds,
            queue_samples=rw.queue_samples,
            timeout_seconds=rw.timeout_seconds,
            backoff_seconds=rw.backoff_seconds,
            backoff_max_seconds=rw.backoff_max_seconds,
            drain_seconds=rw.drain_seconds,
        )
    except ValueError as exc:
        raise ConfigError(f"[remote_write]: {exc}") from exc


def build_bus(settings: Settings) -> AppBus:
    """The bus of `[bus] url`: MemoryBus, or a NatsBus that `connect_bus` connects (in the
    event loop of `run_live`)."""
    if settings.bus.url == "memory":
        return MemoryBus()
    try:
        from rackwatch.bus.nats import NatsBus
    except ImportError as exc:  # the optional extra
        raise ConfigError(
            f"--bus {settings.bus.url} needs the nats extra: pip install 'rackwatch[nats]' "
            "(or use --bus memory)"
        ) from exc
    return NatsBus(
        prefix=settings.bus.prefix,
        retention=stream_retention(settings),
        ack_wait_s=settings.bus.ack_wait_seconds,
    )


def stream_retention(settings: Settings) -> NatsRetention:
    """What each NATS stream keeps, from `[bus]`."""
    from rackwatch.bus.nats import Retention as NatsRetention

    bus = settings.bus
    return NatsRetention(max_age_s=bus.stream_max_age_hours * 3600, max_bytes=bus.stream_max_bytes)


async def connect_bus(services: Services) -> None:
    """Connect a NATS bus; ConfigError (a clear line, no traceback) when it does not answer."""
    bus = services.bus
    if isinstance(bus, MemoryBus):
        return
    await connect_nats(bus, services.settings.bus.url)


async def connect_nats(bus: NatsBus, url: str) -> None:
    """`bus.connect(url)`; ConfigError (a clear line, no traceback) when it does not answer."""
    from nats.errors import Error as NatsError

    from rackwatch.bus.nats import StreamStorageError

    try:
        await bus.connect(url)
    except StreamStorageError as exc:
        await bus.close()
        raise ConfigError(f"NATS at {url}: {exc}") from exc
    except (OSError, TimeoutError, NatsError) as exc:
        await bus.close()
        raise ConfigError(
            f"cannot reach NATS at {url} ({type(exc).__name__}: {exc}): start nats-server -js "
            "or use --bus memory"
        ) from exc


def _start_twin(
    settings: Settings, store: Store, start_ms: int | None
) -> tuple[Twin | None, int | None]:
    """The twin of `rackwatch run` (None with `[twin] enabled` off) and, when the store
    already held its data, the instant it continues from."""
    if not settings.twin.enabled:
        return None, None
    # The next step boundary: the poller publishes each step when the wall clock reaches
    # its instant (a boundary already past would stamp every sample up to a step late).
    first_ms = start_ms if start_ms is not None else aligned_now_ms(5000, up=True)
    twin = build_twin(settings, first_ms)
    resume = continue_after(store, twin) if start_ms is None else None
    if resume is not None and resume > twin.start_ms:  # the stored data runs ahead of now
        twin = build_twin(settings, resume)
    return twin, resume


async def run_live(
    services: Services,
    stop: asyncio.Event,
    *,
    serve_http: bool = False,
    on_serving: Callable[[str], None] | None = None,
) -> None:
    """Run until `stop` is set, then drain: everything published is written before return.

    With `serve_http`, the API and dashboard are served on the settings' host and port in
    this loop (`on_serving` gets the URL once it answers); on stop the server closes first,
    then the pipeline drains.
    """
    bus = services.bus
    intelligence = services.intelligence
    await connect_bus(services)  # before any part subscribes or publishes

    # The order the tasks start in is the order they take each batch: the controller acts on
    # a step before the live state shows it, as it always has.
    parts = [
        (services.writer.run(), "store-writer"),
        (services.alerts.run(), "alerts"),
        None if services.controller is None else (services.controller.run(), "fan-controller"),
        None
        if services.mqtt_controller is None
        else (services.mqtt_controller.run(), "mqtt-fan-controller"),
        (feed(bus, services.live), "live-state"),
        None if services.poller is None else (services.poller.obey(), "twin-commands"),
        None if services.mqtt is None else (services.mqtt.obey(), "mqtt-commands"),
        None if intelligence is None else (intelligence.run(), "intelligence"),
        None if services.remote_write is None else (services.remote_write.run(), "remote-write"),
    ]
    consumers = [asyncio.create_task(job, name=name) for job, name in filter(None, parts)]
    subscribed = [services.writer.ready, services.alerts.ready]
    if services.controller is not None:
        subscribed.append(services.controller.ready)
    if services.mqtt_controller is not None:
        subscribed.append(services.mqtt_controller.ready)
    if intelligence is not None:
        subscribed.append(intelligence.ready)
    if services.remote_write is not None:
        subscribed.append(services.remote_write.ready)
    housekeeping = asyncio.create_task(services.retention.run(stop), name="retention")
    retraining = (
        None
        if services.retrainer is None
        else asyncio.create_task(services.retrainer.run(), name="retrainer")
    )
    reporting = (  # stops with `stop`; a report in progress gives up (before the store closes)
        None
        if services.report_schedule is None
        else asyncio.create_task(services.report_schedule.run(stop), name="reports")
    )
    sources = []
    if services.host is not None:
        sources.append(asyncio.create_task(services.host.run(), name="this-host"))
    for scrape in services.scrapes:
        name = f"scrape-{scrape.scraper.target.name}"
        sources.append(asyncio.create_task(scrape.run(), name=name))
    if services.pdus is not None:
        sources.append(asyncio.create_task(services.pdus.run(), name="pdus"))
    if services.mqtt is not None:
        sources.append(asyncio.create_task(services.mqtt.run(), name="mqtt"))
    for ready in subscribed:
        await ready.wait()
    await asyncio.sleep(0)  # let the other subscriptions open before the first publish
    if not isinstance(bus, MemoryBus):
        await bus.wait_subscribed(SETTLE_S)  # those without a ready event too (commands, live)
    try:
        if serve_http:
            server = services.settings.server
            async with serving(services.api, server.host, server.port) as url:
                if on_serving is not None:
                    on_serving(url)
                await _drive(services.poller, stop)
        else:
            await _drive(services.poller, stop)
    finally:
        stop.set()
        for source in sources:
            source.cancel()
        if retraining is not None:
            retraining.cancel()  # waits a while for a fit in progress: before the store closes
        await asyncio.gather(
            *sources, *filter(None, [retraining, reporting]), return_exceptions=True
        )
        if any(t.get_name() == "intelligence" and not t.done() for t in consumers):
            assert intelligence is not None
            # its last events and health samples reach the store writer before the bus closes
            await intelligence.settle(SETTLE_S)
        if isinstance(bus, MemoryBus):
            bus.close()
        else:
            # What the server still holds for the readers reaches them before they end.
            await bus.settle(SETTLE_S)
            await bus.close()
        outcomes = await asyncio.gather(*consumers, housekeeping, return_exceptions=True)
        await asyncio.to_thread(services.store.flush)
        for task, outcome in zip([*consumers, housekeeping], outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                log.error("%s stopped with an error", task.get_name(), exc_info=outcome)


async def _drive(poller: PacedPoller | None, stop: asyncio.Event) -> None:
    """The twin's steps until `stop`; without a twin, the other sources run until `stop`."""
    if poller is None:
        await stop.wait()
    else:
        await poller.run(stop)


@dataclass(frozen=True, slots=True)
class SimulateSummary:
    scenario: str
    n_servers: int
    n_series: int
    n_samples: int
    n_faults: int
    start_ms: int
    end_ms: int
    seconds: float
    store_bytes: int
    out: Path


SimulateMode = Literal["new", "append", "replace"]


def simulate(
    settings: Settings,
    *,
    duration_s: float,
    out: Path,
    start_ms: int | None = None,
    mode: SimulateMode = "new",
    block_steps: int = 720,
    on_progress: Callable[[int, int], None] | None = None,
) -> SimulateSummary:
    """Generate `duration_s` of the scenario into the store in `out`, as fast as possible.

    A store that already holds samples is refused (`mode="new"`), continued after its last
    instant (`"append"`: the start is then that instant plus one step), or deleted first
    (`"replace"`); runs never mix silently.
    """
    began = time.perf_counter()
    if mode == "append" and start_ms is not None:
        raise ConfigError(
            "--start and --append do not go together: --append continues after the last "
            "stored instant"
        )
    step_ms = build_twin(settings, 0, horizon_s=0).step_ms  # a bad scenario fails here
    if mode == "replace":
        remove_store(store_path(out))
    registry = SeriesRegistry()
    n_faults = 0
    n_samples = 0
    with contextlib.closing(open_store(settings, registry, out)) as store:
        last = newest_instant(store)
        if last is not None and mode == "new":
            raise ConfigError(
                f"{out} already holds data (up to {_utc(last)}): give --append to continue "
                "after it, --replace to start over, or another --out"
            )
        if mode == "append" and last is not None:
            start_ms = last + step_ms
        if start_ms is None:
            start_ms = aligned_now_ms(DAY_MS) - int(duration_s * 1000)
            start_ms -= start_ms % DAY_MS
        twin = build_twin(settings, start_ms, horizon_s=duration_s)
        n_steps = int(duration_s / twin.step_s)
        store.upsert_inventory(inventory_records(twin))
        source = TwinSource(twin, registry)
        done = 0
        while done < n_steps:
            todo = min(block_steps, n_steps - done)
            batch, events = source.read(todo)
            store.write(batch)
            if events:
                store.write_events(events)
                n_faults += sum(e.kind == "fault.injected" for e in events)
            n_samples += len(batch)
            done += todo
            if on_progress is not None:
                on_progress(done, n_steps)
        store.flush()
    return SimulateSummary(
        scenario=twin.name,
        n_servers=twin.topology.n_servers,
        n_series=len(twin.series_keys),
        n_samples=n_samples,
        n_faults=n_faults,
        start_ms=start_ms,
        end_ms=start_ms + n_steps * twin.step_ms,
        seconds=time.perf_counter() - began,
        store_bytes=store_disk_bytes(store_path(out)),  # once closed: as it stays on disk
        out=out,
    )


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def aligned_now_ms(step_ms: int, *, up: bool = False) -> int:
    """The wall clock rounded down (`up`: up) to a multiple of `step_ms`."""
    now = int(time.time() * 1000)
    return now - now % step_ms + (step_ms if up and now % step_ms else 0)
