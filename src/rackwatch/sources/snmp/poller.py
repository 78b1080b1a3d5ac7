"""Polling PDUs over SNMP inside `rackwatch run`: each PDU on its own interval, in parallel
with a bound on the reads in flight, its readings on the bus as one Batch on `telemetry.snmp`.
PDU i of n reads at i/n of its interval after the interval's instants, so that the reads (and
pysnmp's CPU, on the event loop that also drives the fans) spread over the interval.

Per read of a PDU (`<pdu>` is its entity, e.g. `pdu/rack1-a`), stamped with the read's instant:

| entity | metric | from |
|---|---|---|
| `<pdu>/outletNN` | `outlet_power_watts`, `outlet_current_amperes`, `outlet_on` | the outlet |
| `<pdu>` | `pdu_power_watts` | the profile's total, else the sum of the outlets |
| each machine plugged in | `power_watts` | the sum of its outlets (dual-corded: two) |

A machine's sum is published only when every one of its outlets (on this PDU or another) has
a power read within two intervals: a machine with an outlet unread gets no sample rather than
half its power. A machine name without `/` is a host (`host/<name>`, next to what its agent
reports); a path is taken as it is (`c01/r01/s01`).

**Failures stay with their PDU.** A PDU that does not answer (down, unreachable, a timeout, a
wrong community or v3 credentials) publishes nothing: its entities turn UNKNOWN when the alert
engine's silence timeout for real machines passes (`[host] offline_after_seconds`), a
`source.unavailable` event names it and why (once per spell of failures; `source.recovered`
when it answers again), and it is counted (`PduStatus.n_failed`). A value that is missing,
malformed or out of its profile's range is left out (never a stale or invented value): the
outlet's event names the value and why, once per spell, and it is counted (`n_bad_values`).
Nothing a PDU does stops the others: each has its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rackwatch.bus import Bus, subjects
from rackwatch.model import Event, EventKind, SeriesRegistry, Severity
from rackwatch.model.entity import validate
from rackwatch.model.records import Batch
from rackwatch.sources.readings import InventoryItem, Reading, to_batch
from rackwatch.sources.snmp.client import SnmpClient, SnmpError, SnmpTarget, prepare
from rackwatch.sources.snmp.profiles import Profile
from rackwatch.sources.snmp.reader import MAX_OUTLETS, PduReading, read_pdu

log = logging.getLogger(__name__)

SOURCE = "snmp"
DEFAULT_INTERVAL_S = 30.0
DEFAULT_CONCURRENCY = 64
INVENTORY_EVERY_S = 600.0
HOST_PREFIX = "host/"


def machine_entity(name: str) -> str:
    """A machine's entity: `host/<name>` for a bare name, a path as it is.

    >>> machine_entity("gpu1"), machine_entity("c01/r01/s01")
    ('host/gpu1', 'c01/r01/s01')
    """
    return validate(name if "/" in name else HOST_PREFIX + name)


def pdu_entity(name: str) -> str:
    """A PDU's entity: `pdu/<name>` for a bare name, a path as it is.

    >>> pdu_entity("rack1-a"), pdu_entity("c01/r01/pdu")
    ('pdu/rack1-a', 'c01/r01/pdu')
    """
    return validate(name if "/" in name else f"pdu/{name}")


@dataclass(frozen=True)
class PduTarget:
    """One PDU to poll: where (`snmp`), how to read it (`profile`, resolved), how often, and
    which machine each outlet feeds (outlet number -> machine entity)."""

    name: str
    snmp: SnmpTarget
    profile: Profile
    interval_s: float = DEFAULT_INTERVAL_S
    outlet_count: int | None = None
    machines: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self.name)
        if not 1 <= self.interval_s <= 3600:
            raise ValueError(f"interval_s must be 1..3600, not {self.interval_s}")
        if self.snmp.timeout_s * (1 + self.snmp.retries) > self.interval_s:
            raise ValueError(
                "timeout_s x (1 + retries) must not exceed interval_s: a read would still "
                "run when the next one is due"
            )
        if self.outlet_count is not None and not 1 <= self.outlet_count <= 512:
            raise ValueError(f"outlet_count must be 1..512, not {self.outlet_count}")
        for outlet, machine in self.machines.items():
            if not 1 <= outlet <= (self.outlet_count or MAX_OUTLETS):
                raise ValueError(f"outlet {outlet} is not an outlet of {self.name}")
            validate(machine)

    def outlet_entity(self, number: int) -> str:
        return f"{self.name}/outlet{number:02d}"


@dataclass(slots=True)
class PduStatus:
    """How one PDU's reads went (for the inventory and the tests)."""

    n_ok: int = 0
    n_failed: int = 0
    n_bad_values: int = 0
    last_error: str | None = None
    last_ts_ms: int | None = None
    last_duration_s: float | None = None
    n_outlets: int = 0
    bad: set[str] = field(default_factory=set)
    """Entities (outlets, the PDU's total) whose last read had a bad value."""
    labels: dict[int, str] = field(default_factory=dict)


class PduPoller:
    """Polls every PDU on its interval until cancelled (`run`); `poll_all` reads each once."""

    def __init__(
        self,
        targets: Sequence[PduTarget],
        registry: SeriesRegistry,
        bus: Bus,
        *,
        client: SnmpClient | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        on_inventory: Callable[[list[InventoryItem]], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError("two PDUs have the same name: give each a unique name")
        self.targets = list(targets)
        if client is None:
            prepare()  # half a second of pysnmp set-up here, never on the running loop
        self.registry = registry
        self.bus = bus
        self._client = client
        self._own_client = client is None
        self._limit = asyncio.Semaphore(max_concurrency)
        self.on_inventory = on_inventory
        self.clock = clock
        self.status: dict[str, PduStatus] = {t.name: PduStatus() for t in targets}
        self._tried: set[str] = set()
        self._all_tried = asyncio.Event()
        """Set once every PDU has been read (or failed) once: the inventory then knows them."""
        self.n_published = 0
        self._power: dict[str, tuple[int, float]] = {}
        """Each outlet's last power read: (ts_ms, watts), for the machines' sums."""
        self._outlets_of: dict[str, list[tuple[PduTarget, int]]] = {}
        for target in targets:
            for outlet, machine in sorted(target.machines.items()):
                self._outlets_of.setdefault(machine, []).append((target, outlet))

    @property
    def client(self) -> SnmpClient:
        if self._client is None:
            self._client = SnmpClient()
        return self._client

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    async def run(self) -> None:
        """Poll every PDU on its interval until cancelled."""
        tasks = [
            asyncio.create_task(self._loop(i), name=f"pdu-{t.name}")
            for i, t in enumerate(self.targets)
        ]
        inventory = asyncio.create_task(self._keep_inventory(), name="pdu-inventory")
        try:
            await asyncio.gather(*tasks, inventory)
        finally:
            for task in [*tasks, inventory]:
                task.cancel()
            await asyncio.gather(*tasks, inventory, return_exceptions=True)
            self.close()

    async def _loop(self, index: int) -> None:
        # PDU i of n reads at i/n of its interval after the interval's instants: the reads
        # (and their CPU) spread evenly over the interval instead of all at once, so that the
        # event loop, which also drives the fans, never has a burst of them queued
        target = self.targets[index]
        interval_ms = round(target.interval_s * 1000)
        offset_ms = interval_ms * index // len(self.targets)
        now_ms = self.clock() * 1000
        next_ms = math.ceil((now_ms - offset_ms) / interval_ms) * interval_ms + offset_ms
        while True:
            await asyncio.sleep(max(0.0, next_ms / 1000 - self.clock()))
            target = self.targets[index]
            try:
                await self.poll(target)
            except Exception:  # a bug in one PDU's handling must not end its polling
                log.exception("PDU %s: read failed unexpectedly", target.name)
            self._tried.add(target.name)
            if len(self._tried) == len(self.targets):
                self._all_tried.set()
            now_ms = self.clock() * 1000
            next_ms += interval_ms
            if now_ms >= next_ms:  # the read overran: skip the instants it missed
                next_ms += math.ceil((now_ms - next_ms) / interval_ms) * interval_ms

    async def _keep_inventory(self) -> None:
        if self.on_inventory is None:
            return
        longest_s = max((t.interval_s for t in self.targets), default=0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_tried.wait(), 2 * longest_s + 1)
        failing = False
        while True:
            try:
                await self.on_inventory(self.inventory())
                failing = False
            except Exception:  # a failed write must not stop the polling: try again later
                if not failing:
                    log.exception("PDU inventory could not be written; trying again")
                failing = True
            await asyncio.sleep(INVENTORY_EVERY_S)

    async def poll_all(self) -> list[PduReading | None]:
        """Read every PDU once, in parallel (bounded); each one's reading, None if it failed."""
        return list(await asyncio.gather(*(self.poll(t) for t in self.targets)))

    async def poll(self, target: PduTarget) -> PduReading | None:
        """Read one PDU, publish its batch and events; None when it did not answer."""
        status = self.status[target.name]
        async with self._limit:
            started = time.perf_counter()
            try:
                reading = await read_pdu(
                    self.client,
                    target.snmp,
                    target.profile,
                    target.outlet_count,
                    self.clock(),
                    expected_outlets=status.n_outlets or None,
                )
            except SnmpError as e:
                await self._failed(target, status, str(e))
                return None
            except Exception as e:  # an answer pysnmp could not encode or decode (PyAsn1Error)
                await self._failed(target, status, f"{type(e).__name__}: {str(e)[:200]}")
                return None
            status.last_duration_s = time.perf_counter() - started
        events = self._recovered(target, status, reading.ts_ms)
        status.n_ok += 1
        status.last_ts_ms = reading.ts_ms
        status.n_outlets = len(reading.outlets)
        status.n_bad_values += reading.n_bad
        status.labels = {o.number: o.label for o in reading.outlets if o.label is not None}
        events += self._value_events(target, status, reading)
        batch = self.batch_of(target, reading)
        if len(batch):
            await self.bus.publish(subjects.telemetry(SOURCE), batch)
            self.n_published += len(batch)
        for event in events:
            await self.bus.publish(subjects.events(event.kind), event)
        return reading

    async def _failed(self, target: PduTarget, status: PduStatus, why: str) -> None:
        status.n_failed += 1
        for number in target.machines:  # never sum a machine from a stale outlet
            self._power.pop(target.outlet_entity(number), None)
        first = status.last_error is None
        status.last_error = why
        if not first:
            return
        log.warning("PDU %s: %s", target.name, why)
        event = Event(
            ts=round(self.clock() * 1000),
            kind=EventKind.SOURCE_UNAVAILABLE,
            entity=target.name,
            severity=Severity.WARNING,
            attributes={"source": SOURCE, "address": target.snmp.address, "reason": why},
        )
        await self.bus.publish(subjects.events(event.kind), event)

    def _recovered(self, target: PduTarget, status: PduStatus, ts_ms: int) -> list[Event]:
        if status.last_error is None:
            return []
        log.info("PDU %s answers again", target.name)
        status.last_error = None
        return [
            Event(
                ts=ts_ms,
                kind=EventKind.SOURCE_RECOVERED,
                entity=target.name,
                attributes={"source": SOURCE, "address": target.snmp.address},
            )
        ]

    def _value_events(
        self, target: PduTarget, status: PduStatus, reading: PduReading
    ) -> list[Event]:
        """An event per outlet (or total) that turned bad, or good again, in this read."""
        problems = {target.outlet_entity(o.number): o.problems for o in reading.outlets}
        problems[target.name] = tuple(reading.problems)
        events = []
        for entity, found in problems.items():
            if found and entity not in status.bad:
                status.bad.add(entity)
                events.append(
                    Event(
                        ts=reading.ts_ms,
                        kind=EventKind.SOURCE_UNAVAILABLE,
                        entity=entity,
                        severity=Severity.WARNING,
                        attributes={"source": SOURCE, "reason": "; ".join(found)},
                    )
                )
            elif not found and entity in status.bad:
                status.bad.discard(entity)
                events.append(
                    Event(
                        ts=reading.ts_ms,
                        kind=EventKind.SOURCE_RECOVERED,
                        entity=entity,
                        attributes={"source": SOURCE},
                    )
                )
        return events

    def readings_of(self, target: PduTarget, reading: PduReading) -> list[Reading]:
        """The reading as `Reading`s: outlets, the PDU's total, the machines it feeds."""
        out: list[Reading] = []
        for outlet in reading.outlets:
            entity = target.outlet_entity(outlet.number)
            if outlet.watts is not None:
                out.append(Reading(entity, "outlet_power_watts", outlet.watts))
                self._power[entity] = (reading.ts_ms, outlet.watts)
            else:
                self._power.pop(entity, None)
            if outlet.amperes is not None:
                out.append(Reading(entity, "outlet_current_amperes", outlet.amperes))
            if outlet.is_on is not None:
                out.append(Reading(entity, "outlet_on", 1.0 if outlet.is_on else 0.0))
        if reading.total_watts is not None:
            out.append(Reading(target.name, "pdu_power_watts", reading.total_watts))
        out.extend(self._machine_sums(target, reading.ts_ms))
        return out

    def _machine_sums(self, target: PduTarget, ts_ms: int) -> Iterable[Reading]:
        for machine in sorted(set(target.machines.values())):
            total = 0.0
            for pdu, number in self._outlets_of[machine]:
                last = self._power.get(pdu.outlet_entity(number))
                if last is None or ts_ms - last[0] > 2 * pdu.interval_s * 1000:
                    break
                total += last[1]
            else:
                yield Reading(machine, "power_watts", total)

    def batch_of(self, target: PduTarget, reading: PduReading) -> Batch:
        return to_batch(self.readings_of(target, reading), self.registry, reading.ts_ms)

    def inventory(self) -> list[InventoryItem]:
        """A `pdu` item per PDU and an `outlet` item per outlet read or mapped (the kinds and
        attributes of the declared inventory, docs/INVENTORY.md, so that the two merge)."""
        items: list[InventoryItem] = []
        for target in self.targets:
            status = self.status[target.name]
            items.append(
                {
                    "entity": target.name,
                    "kind": "pdu",
                    "host": target.snmp.host,
                    "port": target.snmp.port,
                    "snmp_version": target.snmp.version,
                    "profile": target.profile.name,
                    "interval_s": target.interval_s,
                    "n_outlets": status.n_outlets,
                    "n_ok": status.n_ok,
                    "n_failed": status.n_failed,
                    "n_bad_values": status.n_bad_values,
                    "last_error": status.last_error,
                }
            )
            numbers = set(range(1, status.n_outlets + 1)) | set(target.machines)
            for number in sorted(numbers):
                item: InventoryItem = {
                    "entity": target.outlet_entity(number),
                    "kind": "outlet",
                    "pdu": target.name,
                    "number": number,
                }
                # only what is known: an unknown name or machine is no disagreement with the
                # declared inventory
                if number in status.labels:
                    item["name"] = status.labels[number]
                if number in target.machines:
                    item["machine"] = target.machines[number]
                items.append(item)
        return items
