"""GET /hosts: the real machines (`host/<name>`), one row each, in the shape users of GPU
servers asked for (seed 004): online or offline, uptime, CPU, memory used/total, each disk,
network in/out, and each GPU's utilisation and memory used/total.

Values are the newest of the live state; sizes the inventory does not give are the sum of
their parts (memory used + available, disk used + free, GPU memory used + free). Online is the
alert engine's word (a host silent for `[host] offline_after_seconds` is UNKNOWN, in
maintenance too), else its newest sample against the wall clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from rackwatch.api.auth import READ_ACCESS
from rackwatch.api.deps import CtxDep
from rackwatch.api.params import check_entity_glob
from rackwatch.api.routes.states import state_out
from rackwatch.api.schemas import ErrorOut, HostDiskOut, HostGpuOut, HostOut, HostsOut, StateOut
from rackwatch.model.entity import compile_pattern

router = APIRouter(tags=["hosts"], dependencies=[READ_ACCESS])

ROOT = "host"
IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# A part's kind from its segment, for parts the inventory does not list (yet).
KIND_OF_SEGMENT = (("disk-", "disk"), ("net-", "nic"), ("gpu", "gpu"))


@dataclass
class _Host:
    """What is known of one host: its parts' newest values and inventory attributes."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)
    """entity -> metric -> newest value (NaN: answered nothing)."""
    attributes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    last_seen_ms: int | None = None


@router.get("/hosts", responses={400: {"model": ErrorOut}})
async def get_hosts(
    ctx: CtxDep,
    entity: Annotated[
        str, Query(description="Glob over the hosts' paths (`host/<name>`); default all.")
    ] = f"{ROOT}/*",
) -> HostsOut:
    """Every host in the inventory or in the live state whose path matches, by path. Cost: one
    inventory read, one pass over the live values under `host/`, and the roll-up of every
    state (about 2 ms per thousand entities, as GET /states)."""
    pattern = compile_pattern(check_entity_glob(entity))
    records = await run_in_threadpool(ctx.store.inventory)
    hosts: dict[str, _Host] = {}
    for record in records:
        host = _host_of(record.path)
        if host is not None:
            known = hosts.setdefault(host, _Host())
            known.attributes[record.path] = record.attributes
            known.kinds[record.path] = record.kind
    ts, value = ctx.live.snapshot()
    ids = ctx.select(f"{ROOT}/**", None)
    ids = ids[ids < len(ts)]
    ids = ids[ts[ids] >= 0]
    keys = ctx.registry.keys()
    for i, t, v in zip(ids.tolist(), ts[ids].tolist(), value[ids].tolist(), strict=True):
        path, metric = keys[i]
        host = _host_of(path)
        if host is None:
            continue
        known = hosts.setdefault(host, _Host())
        known.values.setdefault(path, {})[metric] = v
        known.last_seen_ms = t if known.last_seen_ms is None else max(known.last_seen_ms, t)
    now_ms = ctx.clock_ms()
    offline_after_ms = ctx.host_offline_after_s * 1000
    rollups = {} if ctx.alerts is None else ctx.alerts.rollups()
    rows = []
    for path in sorted(hosts):
        if not pattern.match(path):
            continue
        status = None
        if ctx.alerts is not None and path in rollups:
            status = state_out(ctx.alerts, path, rollups[path])
        last_seen_ms = hosts[path].last_seen_ms
        if ctx.alerts is not None:
            online = ctx.alerts.is_reporting(path) is True
        else:  # no engine to ask: its newest sample against the wall clock
            online = last_seen_ms is not None and now_ms - last_seen_ms < offline_after_ms
        rows.append(_row(path, hosts[path], online, status))
    return HostsOut(now_ms=now_ms, offline_after_s=ctx.host_offline_after_s, hosts=rows)


def _host_of(path: str) -> str | None:
    parts = path.split("/", 2)
    return f"{ROOT}/{parts[1]}" if len(parts) >= 2 and parts[0] == ROOT and parts[1] else None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


def _total(given: Any, used: float | None, free: float | None) -> float | None:
    total = _number(given)
    if total is None and used is not None and free is not None:
        total = used + free
    return total


def _either(first: float | None, second: float | None) -> float | None:
    return first if first is not None else second


def _sum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _kind(path: str, known: _Host) -> str:
    kind = known.kinds.get(path)
    if kind:
        return kind
    segment = path.rsplit("/", 1)[-1]
    return next((k for prefix, k in KIND_OF_SEGMENT if segment.startswith(prefix)), "other")


def _index(path: str) -> int | None:
    digits = re.search(r"(\d+)$", path)
    return int(digits.group(1)) if digits else None


def _addresses(facts: Mapping[str, Any]) -> list[str]:
    """Every address of the host, IPv4 first (link-local last): the first is the one to show."""
    found = [str(a) for nic in (facts.get("addresses") or {}).values() for a in nic or ()]
    return sorted(found, key=lambda a: (not IPV4.match(a), a.startswith(("169.254.", "fe80:"))))


def _row(path: str, known: _Host, online: bool, status: StateOut | None) -> HostOut:
    facts = known.attributes.get(path, {})

    def v(metric: str, entity: str = path) -> float | None:
        return _number(known.values.get(entity, {}).get(metric))

    parts = sorted(
        (set(known.values) | set(known.attributes)) - {path},
        key=lambda p: (_index(p) is None, _index(p) or 0, p),
    )
    memory_used = v("memory_used_bytes")
    memory_total = _total(facts.get("memory_total_bytes"), memory_used, v("memory_available_bytes"))
    disks = []
    gpus = []
    nics = []
    for part in parts:
        kind, attrs = _kind(part, known), known.attributes.get(part, {})
        if kind == "disk":
            used = v("disk_used_bytes", part)
            total = _total(attrs.get("total_bytes"), used, v("disk_free_bytes", part))
            disks.append(
                HostDiskOut(
                    entity=part,
                    mountpoint=str(attrs.get("mountpoint") or part.rsplit("/disk-", 1)[-1]),
                    used_bytes=used,
                    total_bytes=total,
                    utilization_ratio=_either(
                        v("disk_utilization_ratio", part), _ratio(used, total)
                    ),
                )
            )
        elif kind == "gpu":
            used = v("gpu_memory_used_bytes", part)
            total = _total(attrs.get("memory_total_bytes"), used, v("gpu_memory_free_bytes", part))
            index = attrs.get("index")
            gpus.append(
                HostGpuOut(
                    entity=part,
                    index=index if isinstance(index, int) else _index(part),
                    name=None if attrs.get("name") is None else str(attrs["name"]),
                    utilization_ratio=v("gpu_utilization_ratio", part),
                    memory_used_bytes=used,
                    memory_total_bytes=total,
                    memory_utilization_ratio=_either(
                        _ratio(used, total), v("gpu_memory_utilization_ratio", part)
                    ),
                )
            )
        elif kind == "nic":
            nics.append(part)
    os_name = facts.get("os_pretty_name") or " ".join(
        str(facts[k]) for k in ("os", "os_release") if facts.get(k)
    )
    return HostOut(
        entity=path,
        name=path.split("/", 1)[1],
        online=online,
        state=status,
        last_seen_ms=known.last_seen_ms,
        os=os_name or None,
        addresses=_addresses(facts),
        uptime_seconds=v("uptime_seconds"),
        cpu_utilization_ratio=v("cpu_utilization_ratio"),
        load_average_1m=v("load_average_1m"),
        memory_used_bytes=memory_used,
        memory_total_bytes=memory_total,
        memory_utilization_ratio=_either(
            _ratio(memory_used, memory_total), v("memory_utilization_ratio")
        ),
        network_receive_bytes_per_second=_sum(
            [v("network_receive_bytes_per_second", n) for n in nics]
        ),
        network_transmit_bytes_per_second=_sum(
            [v("network_transmit_bytes_per_second", n) for n in nics]
        ),
        disks=disks,
        gpus=gpus,
    )
