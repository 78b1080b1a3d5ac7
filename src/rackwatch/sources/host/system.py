"""The host collector: one machine's CPU, memory, disks, network, sensors and fans, read with
psutil, as Readings on `host/<name>` and its components (docs/METRICS.md, "host").

`HostCollector.collect()` reads everything on every call: about 1.4 ms of CPU on a 2-core VM,
where node_exporter spends about 8 ms per scrape (`bench/bench_agent.py`); no per-process
iteration, no platform calls, no blocking. Skipped: pseudo, network and read-only image file
systems, loopback and veth interfaces. `inventory()` gives the static facts (OS, core
counts, sizes, addresses).

>>> collector = HostCollector("demo")
>>> readings = collector.collect()
>>> [r.entity for r in readings if r.metric == "memory_utilization_ratio"]
['host/demo']
>>> disk_segment("/"), disk_segment("/boot/efi")
('disk-root', 'disk-boot_efi')

Entities: `host/<name>` (CPU total, frequency, load, memory, swap, uptime, processes,
sessions), `cpu<k>` (a core), `disk-<mount point>`, `net-<interface>`, `sensor-<chip>_<label>`
and `fan-<chip>_<label>` below it.

What the values mean where psutil leaves a choice:

- CPU utilisation is busy time over all time since the previous call (psutil's definition:
  idle and iowait are not busy, guest time is already in user time), computed from this
  collector's own copy of `psutil.cpu_times(percpu=True)`: `psutil.cpu_percent` keeps its
  "since the last call" in a module-wide table per thread, which other callers in the process
  move and which a collection from a worker thread pool would read from the wrong thread.
  The baseline is taken in `__init__`, so the first `collect()` is meaningful; an interval
  in which the kernel counted no tick at all gives no reading (0/0), not a made-up 0.
- Memory used is total less available (what `free` calls available), not psutil's `used`.
- Disk used is the blocks in use, free the blocks an unprivileged user may still write, and
  the ratio used / (used + free), as `df` shows it: the blocks reserved for root are in
  neither, so used + free can be less than the size (`total_bytes` in the inventory).
- Rates (disk read/write, network receive/transmit) are counter differences over the
  monotonic time since the previous call: none on the first call, and none for a counter
  that went backwards (a reset: it is the new baseline). Never negative.

A part that raises (a permission, a platform without it) is left out of that collection and
counted in `n_errors`; it is logged at WARNING the first time, then at DEBUG. A part the
platform does not implement (NotImplementedError, AttributeError) is not tried again.
Sensors and fans where psutil has no such function are simply absent. Not thread-safe: one
caller at a time (the agent's loop).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]  # no types without types-psutil

from rackwatch.sources.readings import InventoryItem, Reading, segment

log = logging.getLogger(__name__)

MHZ = 1e6
TEMPERATURE_RANGE_C = (-60.0, 200.0)
"""A temperature outside this is a sensor's error code (-128, 255 ...), not a reading."""
FAN_RPM_MAX = 50_000.0
"""Above any real fan (65,535 is a common "no reading" value)."""
SKIPPED_FSTYPES = frozenset({"squashfs", "iso9660", "erofs", "udf", "cramfs", "romfs"})
"""Read-only images (snaps, CDs): always 100 % full, not disks to watch."""
_SKIPPED_MOUNTS = re.compile(r"^/(snap|var/lib/docker|var/lib/containers|run/credentials)(/|$)")
_SKIPPED_INTERFACES = re.compile(r"^(lo\d*|veth.*)$")
"""Loopback, and the container ends of veth pairs (they come and go with each container)."""
_LOOPBACK_ADDRESSES = ("127.", "::1")
_IO_CACHE_MAX = 256

_Key = tuple[str, str]
"""(device or interface, which counter)."""


def disk_segment(mountpoint: str) -> str:
    """The entity segment of a mounted file system: `/` is `disk-root`."""
    return "disk-root" if mountpoint == "/" else f"disk-{segment(mountpoint)}"


def _is_skipped_interface(name: str) -> bool:
    return _SKIPPED_INTERFACES.match(name) is not None


def _named(groups: Mapping[str, Sequence[Any]]) -> Iterator[tuple[str, str, Any]]:
    """(segment, chip, entry) for psutil's `{chip: [entry with .label]}` sensors and fans:
    `<chip>_<label>` (the chip alone for an empty label); a name met again (two NVMe drives'
    "Composite", two sockets' "Core 0") gets `_2`, `_3` ... in psutil's order."""
    seen: dict[str, int] = {}
    for chip, entries in groups.items():
        for entry in entries:
            label = str(getattr(entry, "label", "") or "")
            base = segment(f"{chip}_{label}" if label else str(chip))
            n = seen.get(base, 0) + 1
            seen[base] = n
            yield (base if n == 1 else f"{base[:60]}_{n}"), str(chip), entry


def _cpu_busy_total(times: Any) -> tuple[float, float]:
    """(busy, total) seconds of one psutil cpu_times() tuple, as psutil's cpu_percent counts."""
    total = float(sum(times))
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total


class _Rates:
    """Per-second rates of named counters between two calls: none for a name not seen in the
    previous call, none for a counter that went backwards (its new value is the baseline)."""

    def __init__(self) -> None:
        self._last: dict[_Key, int] = {}
        self._last_t = 0.0

    def update(self, now: float, counters: dict[_Key, int]) -> dict[_Key, float]:
        dt = now - self._last_t
        rates: dict[_Key, float] = {}
        if self._last and dt > 0:
            for key, value in counters.items():
                before = self._last.get(key)
                if before is not None and value >= before:
                    rates[key] = (value - before) / dt
        self._last, self._last_t = counters, now
        return rates


class HostCollector:
    """Readings of this machine on `host/<name>` (`name`: the hostname by default)."""

    def __init__(
        self, name: str | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hostname = socket.gethostname()
        self.name = segment(name if name is not None else self.hostname)
        self.entity = f"host/{self.name}"
        self.n_errors = 0
        """Parts that failed, over all calls (each failure of each part counts once)."""
        self._clock = clock
        self._warned: set[str] = set()
        self._unsupported: set[str] = set()
        self._cpu_last: list[tuple[float, float]] | None = None
        self._disk_rates = _Rates()
        self._net_rates = _Rates()
        self._io_names: dict[tuple[str, str], str | None] = {}
        self._boot_time: float | None = None
        self._parts: list[tuple[str, Callable[[list[Reading]], None]]] = [
            ("cpu_times", self._read_cpu),
            ("cpu_freq", self._read_frequency),
            ("getloadavg", self._read_load),
            ("virtual_memory", self._read_memory),
            ("swap_memory", self._read_swap),
            ("disk_partitions", self._read_disks),
            ("net_io_counters", self._read_network),
            ("uptime", self._read_uptime),
            ("pids", self._read_processes),
            ("users", self._read_users),
            ("sensors_temperatures", self._read_temperatures),
            ("sensors_fans", self._read_fans),
        ]
        self._guard("cpu_times", self._read_cpu, [])  # the baseline of the first collect()

    # ------------------------------------------------------------------ errors

    def _failed(self, part: str, exc: BaseException) -> None:
        self.n_errors += 1
        unsupported = isinstance(exc, NotImplementedError | AttributeError)
        if unsupported:
            self._unsupported.add(part)
        if part in self._warned:
            log.debug("host %s: %s failed again: %r", self.name, part, exc)
            return
        self._warned.add(part)
        log.warning(
            "host %s: %s failed, left out of the collection%s: %r",
            self.name,
            part,
            " (not supported here: not tried again)" if unsupported else "",
            exc,
        )

    def _guard(self, part: str, read: Callable[[list[Reading]], None], out: list[Reading]) -> None:
        if part in self._unsupported:
            return
        try:
            read(out)
        except Exception as exc:
            self._failed(part, exc)

    def _add(self, out: list[Reading], entity: str, metric: str, value: float) -> None:
        if math.isfinite(value):
            out.append(Reading(entity, metric, value))

    # ------------------------------------------------------------------ collection

    def collect(self) -> list[Reading]:
        """Every reading of this machine now (about 20 + 6 per core, disk and interface)."""
        out: list[Reading] = []
        for part, read in self._parts:
            self._guard(part, read, out)
        return out

    def _read_cpu(self, out: list[Reading]) -> None:
        now = [_cpu_busy_total(t) for t in psutil.cpu_times(percpu=True)]
        last, self._cpu_last = self._cpu_last, now
        if last is None or len(last) != len(now):  # first call, or a core went on/offline
            return
        all_busy = all_total = 0.0
        for k, ((busy0, total0), (busy1, total1)) in enumerate(zip(last, now, strict=True)):
            d_total = max(0.0, total1 - total0)
            d_busy = min(max(0.0, busy1 - busy0), d_total)
            all_busy += d_busy
            all_total += d_total
            if d_total > 0:
                self._add(out, f"{self.entity}/cpu{k}", "cpu_utilization_ratio", d_busy / d_total)
        if all_total > 0:
            self._add(out, self.entity, "cpu_utilization_ratio", all_busy / all_total)

    def _read_frequency(self, out: list[Reading]) -> None:
        freq = psutil.cpu_freq()
        if freq is not None and freq.current > 0:
            self._add(out, self.entity, "cpu_frequency_hertz", float(freq.current) * MHZ)

    def _read_load(self, out: list[Reading]) -> None:
        for metric, value in zip(
            ("load_average_1m", "load_average_5m", "load_average_15m"),
            psutil.getloadavg(),
            strict=True,
        ):
            self._add(out, self.entity, metric, max(0.0, float(value)))

    def _read_memory(self, out: list[Reading]) -> None:
        mem = psutil.virtual_memory()
        total, available = float(mem.total), min(max(0.0, float(mem.available)), mem.total)
        self._add(out, self.entity, "memory_used_bytes", total - available)
        self._add(out, self.entity, "memory_available_bytes", available)
        if total > 0:
            self._add(out, self.entity, "memory_utilization_ratio", (total - available) / total)

    def _read_swap(self, out: list[Reading]) -> None:
        swap = psutil.swap_memory()
        total, used = float(swap.total), min(max(0.0, float(swap.used)), swap.total)
        self._add(out, self.entity, "swap_used_bytes", used)
        if total > 0:
            self._add(out, self.entity, "swap_utilization_ratio", used / total)

    def mounted_disks(self) -> list[Any]:
        """psutil's partitions worth watching: real devices (not pseudo, network or read-only
        image file systems), one mount per device (the shortest mount point: `/` over a bind
        mount of it elsewhere)."""
        kept: list[Any] = []
        devices: set[str] = set()
        parts = sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint))
        for part in parts:
            if part.fstype in SKIPPED_FSTYPES or _SKIPPED_MOUNTS.match(part.mountpoint):
                continue
            if part.device and part.device in devices:
                continue
            devices.add(part.device)
            kept.append(part)
        return kept

    def _read_disks(self, out: list[Reading]) -> None:
        io_entities: dict[str, str] = {}
        io_keys: Mapping[str, Any] | None = None
        if "disk_io_counters" not in self._unsupported:
            try:
                io_keys = psutil.disk_io_counters(perdisk=True) or {}
            except Exception as exc:
                self._failed("disk_io_counters", exc)
        now = self._clock()
        for part in self.mounted_disks():
            entity = f"{self.entity}/{disk_segment(part.mountpoint)}"
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except Exception as exc:  # unreadable (permissions, a vanished mount)
                self._failed(f"disk_usage {part.mountpoint}", exc)
                continue
            used, free = max(0.0, float(usage.used)), max(0.0, float(usage.free))
            if usage.total <= 0 or used + free <= 0:
                continue
            self._add(out, entity, "disk_used_bytes", used)
            self._add(out, entity, "disk_free_bytes", free)
            self._add(out, entity, "disk_utilization_ratio", used / (used + free))
            if io_keys:
                io_name = self._io_name(part.device, part.mountpoint, io_keys)
                if io_name is not None and io_name not in io_entities:
                    io_entities[io_name] = entity
        if io_keys is None:
            return
        counters: dict[_Key, int] = {}
        for io_name in io_entities:
            io = io_keys[io_name]
            counters[(io_name, "r")] = int(io.read_bytes)
            counters[(io_name, "w")] = int(io.write_bytes)
        for (io_name, which), rate in self._disk_rates.update(now, counters).items():
            metric = "disk_read_bytes_per_second" if which == "r" else "disk_write_bytes_per_second"
            self._add(out, io_entities[io_name], metric, rate)

    def _io_name(self, device: str, mountpoint: str, io_keys: Mapping[str, Any]) -> str | None:
        """The key of `psutil.disk_io_counters(perdisk=True)` for a mounted device: its name
        (`/dev/vda1` -> `vda1`), the name it links to (`/dev/mapper/vg-root` -> `dm-0`), or on
        Linux the block device of the mount's device number (`/dev/root`)."""
        key = (device, mountpoint)
        if key in self._io_names:
            found = self._io_names[key]
            return found if found is None or found in io_keys else None
        found = None
        for candidate in (os.path.basename(device), os.path.basename(os.path.realpath(device))):
            if candidate in io_keys:
                found = candidate
                break
        else:
            try:
                dev = os.stat(mountpoint).st_dev
                link = os.readlink(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
                found = os.path.basename(link) if os.path.basename(link) in io_keys else None
            except OSError:
                found = None
        if len(self._io_names) >= _IO_CACHE_MAX:
            self._io_names.clear()
        self._io_names[key] = found
        return found

    def _read_network(self, out: list[Reading]) -> None:
        nics = psutil.net_io_counters(pernic=True) or {}
        now = self._clock()
        entities: dict[str, str] = {}
        counters: dict[_Key, int] = {}
        for nic, io in nics.items():
            if _is_skipped_interface(nic):
                continue
            entity = entities[nic] = f"{self.entity}/net-{segment(nic)}"
            received, sent = int(io.bytes_recv), int(io.bytes_sent)
            counters[(nic, "rx")], counters[(nic, "tx")] = received, sent
            self._add(out, entity, "network_receive_bytes_total", float(max(0, received)))
            self._add(out, entity, "network_transmit_bytes_total", float(max(0, sent)))
        for (nic, which), rate in self._net_rates.update(now, counters).items():
            metric = (
                "network_receive_bytes_per_second"
                if which == "rx"
                else "network_transmit_bytes_per_second"
            )
            self._add(out, entities[nic], metric, rate)

    def _read_uptime(self, out: list[Reading]) -> None:
        if hasattr(time, "CLOCK_BOOTTIME"):  # Linux: immune to the wall clock being set
            uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        else:
            if self._boot_time is None:
                self._boot_time = float(psutil.boot_time())
            uptime = time.time() - self._boot_time
        self._add(out, self.entity, "uptime_seconds", max(0.0, uptime))

    def _read_processes(self, out: list[Reading]) -> None:
        self._add(out, self.entity, "process_count", float(len(psutil.pids())))

    def _read_users(self, out: list[Reading]) -> None:
        self._add(out, self.entity, "user_session_count", float(len(psutil.users())))

    def _read_temperatures(self, out: list[Reading]) -> None:
        if not hasattr(psutil, "sensors_temperatures"):
            return
        low, high = TEMPERATURE_RANGE_C
        for name, _, entry in _named(psutil.sensors_temperatures()):
            value = float(entry.current) if entry.current is not None else math.nan
            if low <= value <= high:
                self._add(out, f"{self.entity}/sensor-{name}", "temperature_celsius", value)

    def _read_fans(self, out: list[Reading]) -> None:
        if not hasattr(psutil, "sensors_fans"):
            return
        for name, _, entry in _named(psutil.sensors_fans()):
            value = float(entry.current) if entry.current is not None else math.nan
            if 0.0 <= value <= FAN_RPM_MAX:
                self._add(out, f"{self.entity}/fan-{name}", "fan_rpm", value)

    # ------------------------------------------------------------------ inventory

    def inventory(self) -> list[InventoryItem]:
        """Static facts, not series: the host, each core, mounted disk, interface, sensor
        and fan, as JSON-friendly dicts. A part that fails is left out (and counted)."""
        items: list[InventoryItem] = []
        for part, build in (
            ("inventory host", self._host_item),
            ("inventory cpus", self._cpu_items),
            ("inventory disks", self._disk_items),
            ("inventory nics", self._nic_items),
            ("inventory sensors", self._sensor_items),
        ):
            try:
                items += build()
            except Exception as exc:
                self._failed(part, exc)
        return items

    def _host_item(self) -> list[InventoryItem]:
        freq = _optional(psutil.cpu_freq)
        os_release = _optional(platform.freedesktop_os_release) or {}
        item: InventoryItem = {
            "entity": self.entity,
            "kind": "host",
            "name": self.name,
            "hostname": self.hostname,
            "os": platform.system(),
            "os_release": platform.release(),
            "os_version": platform.version(),
            "os_pretty_name": os_release.get("PRETTY_NAME"),
            "architecture": platform.machine(),
            "cpu_model": _cpu_model(),
            "physical_cores": _optional(lambda: psutil.cpu_count(logical=False)),
            "logical_cores": _optional(psutil.cpu_count),
            "max_frequency_hertz": _hertz(freq.max) if freq is not None else None,
            "memory_total_bytes": int(psutil.virtual_memory().total),
            "swap_total_bytes": _optional(lambda: int(psutil.swap_memory().total)),
            "boot_time_ms": _optional(lambda: round(psutil.boot_time() * 1000)),
            "addresses": {
                nic: addresses
                for nic, addresses in _addresses(_optional(psutil.net_if_addrs) or {}).items()
                if addresses
            },
            "python_version": platform.python_version(),
            "psutil_version": str(psutil.__version__),
        }
        return [item]

    def _cpu_items(self) -> list[InventoryItem]:
        freqs = _optional(lambda: psutil.cpu_freq(percpu=True)) or []
        n = _optional(psutil.cpu_count) or len(freqs)
        items: list[InventoryItem] = []
        for k in range(n):
            item: InventoryItem = {"entity": f"{self.entity}/cpu{k}", "kind": "cpu", "index": k}
            if k < len(freqs):
                item["min_frequency_hertz"] = _hertz(freqs[k].min)
                item["max_frequency_hertz"] = _hertz(freqs[k].max)
            items.append(item)
        return items

    def _disk_items(self) -> list[InventoryItem]:
        items: list[InventoryItem] = []
        io_keys = _optional(lambda: psutil.disk_io_counters(perdisk=True)) or {}
        for part in self.mounted_disks():
            usage = _optional(partial(psutil.disk_usage, part.mountpoint))
            total = int(usage.total) if usage is not None else 0
            if total <= 0:
                continue
            items.append(
                {
                    "entity": f"{self.entity}/{disk_segment(part.mountpoint)}",
                    "kind": "disk",
                    "mountpoint": part.mountpoint,
                    "device": part.device,
                    "io_device": self._io_name(part.device, part.mountpoint, io_keys),
                    "fstype": part.fstype,
                    "read_only": "ro" in str(part.opts).split(","),
                    "total_bytes": total,
                }
            )
        return items

    def _nic_items(self) -> list[InventoryItem]:
        stats = _optional(psutil.net_if_stats) or {}
        addresses = _addresses(_optional(psutil.net_if_addrs) or {})
        macs = _macs(_optional(psutil.net_if_addrs) or {})
        items: list[InventoryItem] = []
        for nic in sorted(set(stats) | set(addresses)):
            if _is_skipped_interface(nic):
                continue
            stat = stats.get(nic)
            items.append(
                {
                    "entity": f"{self.entity}/net-{segment(nic)}",
                    "kind": "nic",
                    "interface": nic,
                    "addresses": addresses.get(nic, []),
                    "mac": macs.get(nic),
                    "speed_mbps": int(stat.speed) if stat is not None and stat.speed > 0 else None,
                    "mtu": int(stat.mtu) if stat is not None else None,
                    "is_up": bool(stat.isup) if stat is not None else None,
                }
            )
        return items

    def _sensor_items(self) -> list[InventoryItem]:
        items: list[InventoryItem] = []
        if hasattr(psutil, "sensors_temperatures"):
            for name, chip, entry in _named(psutil.sensors_temperatures()):
                items.append(
                    {
                        "entity": f"{self.entity}/sensor-{name}",
                        "kind": "sensor",
                        "chip": chip,
                        "label": str(entry.label or ""),
                        "high_celsius": _finite(entry.high),
                        "critical_celsius": _finite(entry.critical),
                    }
                )
        if hasattr(psutil, "sensors_fans"):
            for name, chip, entry in _named(psutil.sensors_fans()):
                items.append(
                    {
                        "entity": f"{self.entity}/fan-{name}",
                        "kind": "fan",
                        "chip": chip,
                        "label": str(entry.label or ""),
                    }
                )
        return items


def _optional(read: Callable[[], Any]) -> Any:
    """`read()`, or None where this platform cannot say (inventory attributes only)."""
    try:
        return read()
    except Exception as exc:
        log.debug("inventory: %r", exc)
        return None


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _hertz(mhz: Any) -> float | None:
    return float(mhz) * MHZ if mhz is not None and mhz > 0 else None


def _addresses(if_addrs: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    """IPv4 and IPv6 addresses per interface, loopback left out (scope suffix `%eth0` too)."""
    families = {socket.AF_INET, socket.AF_INET6}
    found: dict[str, list[str]] = {}
    for nic, entries in if_addrs.items():
        if _is_skipped_interface(nic):
            continue
        found[nic] = [
            str(entry.address).split("%", 1)[0]
            for entry in entries
            if entry.family in families and not str(entry.address).startswith(_LOOPBACK_ADDRESSES)
        ]
    return found


def _macs(if_addrs: Mapping[str, Sequence[Any]]) -> dict[str, str]:
    link = getattr(psutil, "AF_LINK", None)
    return {
        nic: str(entry.address)
        for nic, entries in if_addrs.items()
        for entry in entries
        if link is not None and entry.family == link
    }


def _cpu_model() -> str | None:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
                for line in cpuinfo:
                    if line.startswith(("model name", "Hardware", "Processor")):
                        return line.split(":", 1)[1].strip() or None
        except OSError:
            return None
    return platform.processor() or None
