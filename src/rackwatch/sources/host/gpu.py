"""The GPU collector: this machine's NVIDIA GPUs as Readings on `host/<name>/gpu<index>`
(docs/METRICS.md, "GPU"), and one `kind: "gpu"` inventory item each.

Backends, tried once, in this order, at the first use of the collector (`available`,
`backend`, `collect()` or `inventory()`; constructing it costs nothing):

1. **NVML** through nvidia-ml-py (`pynvml`, or the module passed as `nvml`). `nvmlInit` is
   called once, at that first use, and `nvmlShutdown` by `close()`.
2. **nvidia-smi**, when NVML cannot start (pynvml does not import, the library is not found,
   the driver is not loaded, or any other NVML error at start, which is logged as a warning):
   `nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`, run without a shell,
   with a timeout, once per collection. It is looked up once with `shutil.which`.
3. **Neither**: `available` is False, `collect()` and `inventory()` return `[]`, no series
   is made, and nothing is tried again (no subprocess per collection). Where neither is
   installed (a machine without an NVIDIA GPU) nothing is logged above DEBUG; an installed
   nvidia-smi that lists no GPU (no driver loaded) is said once at INFO.

>>> cuda_version_text(12040), cuda_version_text(11080)
('12.4', '11.8')
>>> smi_number("612.40"), smi_number("[N/A]"), smi_number("[Not Supported]"), smi_number("")
(612.4, None, None, None)

Values are in base units: ratios 0..1 (NVML and nvidia-smi give percent), watts (NVML gives
milliwatts), bytes (nvidia-smi gives MiB). Memory used is what processes allocated, without
the memory the driver reserves for itself, as nvidia-smi shows it since driver R510: NVML's
version 2 memory query (its version 1, all an older driver has, counts the reserved memory as
used). `gpu_memory_utilization_ratio` is memory used over total, not NVML's
`utilization.memory` (the share of time the memory bus was busy).
`gpu_fan_ratio` can exceed 1: NVIDIA documents that the fan speed, a percentage of the
product's maximum noise-tolerance speed, may exceed 100 %; it is kept up to 2 (200 %).

A value the hardware does not have (NVML's NotSupported, nvidia-smi's `[N/A]` or
`[Not Supported]`: a passively cooled board has no fan) is no reading and not an error, and
NVML is not asked for it again. A call that fails otherwise (for one field of one GPU: the
other fields and GPUs are still read), output that cannot be read, or a value out of bounds
(negative, not finite, a temperature above 200 °C, memory used above total, power above
10 kW) is no reading and is counted in `n_errors` (the values out of bounds also in
`n_rejected`); each distinct problem is logged at WARNING the first time, then at DEBUG.

Not thread-safe: one caller at a time (the agent's loop).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from rackwatch.errors import SourceError, SourceTimeout
from rackwatch.model.entity import validate
from rackwatch.sources.readings import InventoryItem, Reading

log = logging.getLogger(__name__)

NVML: Final = "nvml"
NVIDIA_SMI: Final = "nvidia-smi"
BACKENDS: Final = (NVML, NVIDIA_SMI)

SMI_FIELDS: Final = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "temperature.gpu",
    "power.draw",
    "enforced.power.limit",
    "fan.speed",
)
SMI_QUERY_ARGS: Final = (
    "--query-gpu=" + ",".join(SMI_FIELDS),
    "--format=csv,noheader,nounits",
)
DEFAULT_TIMEOUT_S: Final = 5.0
"""nvidia-smi answers in well under a second; a hung driver makes it hang for minutes."""

MIB: Final = 1 << 20
MAX_MEMORY_BYTES: Final = float(1 << 44)
"""16 TiB: far above any GPU's memory (an H200 has 141 GB); more is a broken value."""
MAX_TEMPERATURE_C: Final = 200.0
MAX_POWER_W: Final = 10_000.0
"""Above any GPU board (a B200 is held to 1 kW); more is a broken value."""
MAX_FAN_RATIO: Final = 2.0

SmiRunner = Callable[[Sequence[str], float], str]
"""`run(argv, timeout_s) -> stdout`; raises SourceError (SourceTimeout) when the command fails."""

_NO_VALUE: Final = frozenset({"", "n/a", "[n/a]", "not supported", "[not supported]"})
"""What nvidia-smi prints for a value this GPU does not have (older drivers bracket less)."""
_DECIMAL = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")
_CUDA_IN_HEADER = re.compile(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)+)")
_SNIPPET = 120


# ---------------------------------------------------------------------- pure helpers


def cuda_version_text(version: int) -> str:
    """NVML's CUDA driver version (`1000 * major + 10 * minor`) as nvidia-smi prints it.

    >>> cuda_version_text(12040), cuda_version_text(12090), cuda_version_text(13000)
    ('12.4', '12.9', '13.0')
    """
    return f"{version // 1000}.{version % 1000 // 10}"


def cuda_version_from_header(text: str) -> str | None:
    """The CUDA version in plain `nvidia-smi` output's header (None if it says N/A).

    >>> cuda_version_from_header("| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   "
    ...                          "CUDA Version: 12.4     |")
    '12.4'
    >>> cuda_version_from_header("| NVIDIA-SMI 430.14   Driver Version: 430.14   CUDA Version: N/A")
    """
    found = _CUDA_IN_HEADER.search(text)
    return found.group(1) if found else None


def smi_number(field: str) -> float | None:
    """One nvidia-smi `nounits` field as a number; None for a value the GPU does not have
    (`[N/A]`, `[Not Supported]`, empty). Anything else that is not a plain decimal
    (`[Unknown Error]`, `nan`, a unit) raises ValueError.

    >>> smi_number(" 81559 "), smi_number("N/A")
    (81559.0, None)
    >>> smi_number("nan")
    Traceback (most recent call last):
    ...
    ValueError: not a number: 'nan'
    """
    text = field.strip()
    if text.lower() in _NO_VALUE:
        return None
    if not _DECIMAL.match(text):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def _smi_text(field: str) -> str | None:
    text = field.strip()
    return None if text.lower() in _NO_VALUE else text


def _text(value: object) -> str:
    """nvidia-ml-py returns str since 11.515.48 (bytes before)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU's values as the backends give them, in the units named; None: no value."""

    memory_total_bytes: float | None = None
    memory_used_bytes: float | None = None
    memory_free_bytes: float | None = None
    utilization_percent: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    fan_percent: float | None = None


def gpu_readings(entity: str, sample: GpuSample) -> tuple[list[Reading], list[tuple[str, float]]]:
    """The readings of one GPU, and the values refused as out of bounds (`(what, value)`).

    >>> kept, refused = gpu_readings(
    ...     "host/h/gpu0",
    ...     GpuSample(memory_total_bytes=100.0, memory_used_bytes=25.0, memory_free_bytes=75.0,
    ...               temperature_celsius=250.0, fan_percent=None),
    ... )
    >>> [(r.metric, r.value) for r in kept]  # doctest: +NORMALIZE_WHITESPACE
    [('gpu_memory_used_bytes', 25.0), ('gpu_memory_free_bytes', 75.0),
     ('gpu_memory_utilization_ratio', 0.25)]
    >>> refused
    [('gpu_temperature_celsius', 250.0)]
    """
    kept: list[Reading] = []
    refused: list[tuple[str, float]] = []

    def put(metric: str, value: float | None, high: float) -> bool:
        if value is None:
            return False
        if math.isfinite(value) and 0.0 <= value <= high:
            kept.append(Reading(entity, metric, value))
            return True
        refused.append((metric, value))
        return False

    total = sample.memory_total_bytes
    if total is not None and not (math.isfinite(total) and 0.0 < total <= MAX_MEMORY_BYTES):
        refused.append(("memory_total_bytes", total))
        total = None
    memory_high = MAX_MEMORY_BYTES if total is None else total

    put("gpu_utilization_ratio", _percent(sample.utilization_percent), 1.0)
    used_ok = put("gpu_memory_used_bytes", sample.memory_used_bytes, memory_high)
    put("gpu_memory_free_bytes", sample.memory_free_bytes, memory_high)
    if used_ok and total is not None and sample.memory_used_bytes is not None:
        put("gpu_memory_utilization_ratio", sample.memory_used_bytes / total, 1.0)
    put("gpu_temperature_celsius", sample.temperature_celsius, MAX_TEMPERATURE_C)
    put("gpu_power_watts", sample.power_watts, MAX_POWER_W)
    put("gpu_power_limit_watts", sample.power_limit_watts, MAX_POWER_W)
    put("gpu_fan_ratio", _percent(sample.fan_percent), MAX_FAN_RATIO)
    return kept, refused


def _percent(value: float | None) -> float | None:
    return None if value is None else value / 100.0


@dataclass(frozen=True, slots=True)
class SmiRow:
    """One line of the nvidia-smi query: a GPU's identity, its values, and the fields whose
    value could not be read (`[Unknown Error]`, text where a number belongs)."""

    index: int
    name: str | None
    uuid: str | None
    driver_version: str | None
    sample: GpuSample
    unreadable: tuple[str, ...] = ()


def parse_smi_query(text: str) -> tuple[list[SmiRow], list[str]]:
    """The rows of `nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`, and
    one message per non-blank line that is not such a row (a warning, a cut line, a repeated
    index).

    >>> rows, bad = parse_smi_query(
    ...     "0, NVIDIA H200, GPU-0a, 550.54.15, 143771, 4, 143247, 0, 31, 75.43, 700.00, [N/A]\\n"
    ...     "No devices were found\\n"
    ... )
    >>> rows[0].index, rows[0].name, rows[0].sample.memory_total_bytes, rows[0].sample.fan_percent
    (0, 'NVIDIA H200', 150754820096.0, None)
    >>> bad
    ["line 2: 1 fields, not 12: 'No devices were found'"]
    """
    rows: list[SmiRow] = []
    problems: list[str] = []
    seen: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        snippet = repr(line.strip()[:_SNIPPET])
        fields = line.split(",")
        if len(fields) != len(SMI_FIELDS):
            problems.append(
                f"line {number}: {len(fields)} fields, not {len(SMI_FIELDS)}: {snippet}"
            )
            continue
        index_text = fields[0].strip()
        if not index_text.isascii() or not index_text.isdigit():
            problems.append(f"line {number}: no GPU index: {snippet}")
            continue
        index = int(index_text)
        if index in seen:
            problems.append(f"line {number}: GPU {index} again: {snippet}")
            continue
        seen.add(index)
        values: dict[str, float | None] = {}
        unreadable: list[str] = []
        for name, field in zip(SMI_FIELDS[4:], fields[4:], strict=True):
            try:
                values[name] = smi_number(field)
            except ValueError:
                values[name] = None
                unreadable.append(name)
        rows.append(
            SmiRow(
                index=index,
                name=_smi_text(fields[1]),
                uuid=_smi_text(fields[2]),
                driver_version=_smi_text(fields[3]),
                sample=GpuSample(
                    memory_total_bytes=_mib(values["memory.total"]),
                    memory_used_bytes=_mib(values["memory.used"]),
                    memory_free_bytes=_mib(values["memory.free"]),
                    utilization_percent=values["utilization.gpu"],
                    temperature_celsius=values["temperature.gpu"],
                    power_watts=values["power.draw"],
                    power_limit_watts=values["enforced.power.limit"],
                    fan_percent=values["fan.speed"],
                ),
                unreadable=tuple(unreadable),
            )
        )
    return rows, problems


def _mib(value: float | None) -> float | None:
    return None if value is None else value * MIB


def run_command(argv: Sequence[str], timeout_s: float) -> str:
    """Run a command without a shell, in the C locale (decimal points, English messages),
    and return its standard output. Raises SourceTimeout when it runs past `timeout_s` (it
    is killed), SourceError when it cannot start or exits with a non-zero status (with the
    first line it printed: nvidia-smi says what is wrong on stdout)."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceTimeout(
            f"{argv[0]} did not answer within {timeout_s:g} s (a hung GPU driver?); "
            "it was stopped and is run again at the next collection"
        ) from exc
    except OSError as exc:
        raise SourceError(f"{argv[0]} could not be run: {exc}") from exc
    if done.returncode != 0:
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        first = said[0][:_SNIPPET] if said else "nothing printed"
        raise SourceError(f"{argv[0]} exited with status {done.returncode}: {first}")
    return done.stdout


# ---------------------------------------------------------------------- the collector


class GpuCollector:
    """Readings of this machine's NVIDIA GPUs on `<host_entity>/gpu<index>`.

    `nvml`: the NVML module (None: import nvidia-ml-py's `pynvml`); `smi`: the nvidia-smi
    command, found with `which` (None: no fallback); `run`: how a command is run (tests pass
    one that answers from recorded output); `backends`: the backends to try, in order (e.g.
    `("nvidia-smi",)` to skip NVML). The GPU index is NVML's enumeration index (also
    nvidia-smi's), which NVML does not promise to keep across reboots (the inventory's uuid
    names the board) and which CUDA's device numbers need not follow (CUDA_DEVICE_ORDER,
    CUDA_VISIBLE_DEVICES).
    """

    def __init__(
        self,
        host_entity: str,
        nvml: Any = None,
        smi: str | None = "nvidia-smi",
        *,
        run: SmiRunner = run_command,
        which: Callable[[str], str | None] = shutil.which,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        backends: Sequence[str] = BACKENDS,
    ) -> None:
        self.host_entity = validate(host_entity)
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown GPU backend(s) {unknown}: choose from {list(BACKENDS)}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be above 0, not {timeout_s!r}")
        self.n_errors = 0
        """Problems over all calls: failed calls, unreadable output, refused values."""
        self.n_rejected = 0
        """Values refused as out of bounds (also in n_errors)."""
        self.last_error: str | None = None
        self._nvml_given: Any = nvml
        self._smi = smi
        self._run = run
        self._which = which
        self._timeout_s = timeout_s
        self._backends = tuple(backends)
        self._probed = False
        self._closed = False
        self._backend: str | None = None
        self._nvml: Any = None
        self._handles: list[tuple[int, Any]] = []
        self._memory_version: int | None = None
        self._unsupported: set[tuple[int | None, str]] = set()
        self._warned: set[tuple[object, ...]] = set()
        self._smi_argv: tuple[str, ...] = ()
        self._smi_rows: list[SmiRow] = []
        self._smi_fresh: list[SmiRow] | None = None
        self._smi_cuda: str | None = None
        self._smi_cuda_read = False

    # ------------------------------------------------------------------ state

    @property
    def available(self) -> bool:
        """Whether a backend answers with at least one GPU (probes at the first use)."""
        self._probe()
        return self._backend is not None

    @property
    def backend(self) -> str | None:
        """`"nvml"`, `"nvidia-smi"`, or None when there is no GPU to read."""
        self._probe()
        return self._backend

    def close(self) -> None:
        """Shut NVML down (once). The collector reads nothing afterwards."""
        if self._closed:
            return
        self._closed = True
        self._probed = True
        if self._backend == NVML:
            self._shutdown(self._nvml)
        self._backend = None
        self._handles = []
        self._nvml = None

    def __enter__(self) -> GpuCollector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _entity(self, index: int) -> str:
        return f"{self.host_entity}/gpu{index}"

    def _problem(self, key: tuple[object, ...], message: str) -> None:
        self.n_errors += 1
        self.last_error = message
        if key in self._warned:
            log.debug("%s (again)", message)
            return
        self._warned.add(key)
        log.warning("%s", message)

    # ------------------------------------------------------------------ probe

    def _probe(self) -> None:
        if self._probed:
            return
        self._probed = True
        for backend in self._backends:
            if (self._probe_nvml() if backend == NVML else self._probe_smi()) is not None:
                self._backend = backend
                return
        log.debug("%s: no NVIDIA GPU (tried %s)", self.host_entity, ", ".join(self._backends))

    def _probe_nvml(self) -> str | None:
        nvml = self._nvml_given
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError as exc:
                log.debug("%s: NVML: pynvml cannot be imported (%s)", self.host_entity, exc)
                return None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            if isinstance(exc, (nvml.NVMLError_LibraryNotFound, nvml.NVMLError_DriverNotLoaded)):
                log.debug("%s: NVML: %s", self.host_entity, exc)
            else:
                self._problem(
                    ("nvml", "init"),
                    f"{self.host_entity}: NVML did not start ({exc}); trying nvidia-smi",
                )
            return None
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            self._problem(("nvml", "count"), f"{self.host_entity}: NVML counts no GPU: {exc}")
            self._shutdown(nvml)
            return None
        handles: list[tuple[int, Any]] = []
        for index in range(count):
            try:
                handles.append((index, nvml.nvmlDeviceGetHandleByIndex(index)))
            except nvml.NVMLError as exc:
                self._problem(
                    ("nvml", index, "handle"),
                    f"{self._entity(index)}: NVML gives no handle ({exc}); this GPU is left out",
                )
        if not handles:
            log.debug("%s: NVML runs but finds no GPU", self.host_entity)
            self._shutdown(nvml)
            return None
        self._nvml = nvml
        self._handles = handles
        self._memory_version = self._memory_version_of(nvml, handles[0][1])
        log.info("%s: %d NVIDIA GPU(s), read through NVML", self.host_entity, len(handles))
        return NVML

    def _memory_version_of(self, nvml: Any, handle: Any) -> int | None:
        """`nvmlMemory_v2` where the driver has the version 2 memory query, else None (v1)."""
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is None:  # a pynvml older than the query
            return None
        too_old = tuple(
            getattr(nvml, name)
            for name in ("NVMLError_FunctionNotFound", "NVMLError_ArgumentVersionMismatch")
            if hasattr(nvml, name)
        )
        try:
            nvml.nvmlDeviceGetMemoryInfo(handle, version)
        except nvml.NVMLError as exc:
            if isinstance(exc, too_old):
                log.debug("%s: NVML has no v2 memory query (%s): v1", self.host_entity, exc)
                return None
            # another failure: the collection meets it and counts it
        return int(version)

    def _shutdown(self, nvml: Any) -> None:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as exc:
            log.debug("%s: nvmlShutdown failed: %s", self.host_entity, exc)

    def _probe_smi(self) -> str | None:
        if self._smi is None:
            return None
        path = self._which(self._smi)
        if path is None:
            log.debug("%s: %s is not installed", self.host_entity, self._smi)
            return None
        self._smi_argv = (path, *SMI_QUERY_ARGS)
        try:
            text = self._run(self._smi_argv, self._timeout_s)
        except SourceError as exc:
            # Installed without a working driver (a CPU-only machine with the driver
            # package, a container without GPUs): no GPU here, not a fault to warn about.
            log.info("%s: nvidia-smi is installed but reads no GPU: %s", self.host_entity, exc)
            return None
        rows, problems = parse_smi_query(text)
        if not rows:
            log.info(
                "%s: nvidia-smi is installed but lists no GPU: %s",
                self.host_entity,
                problems[0] if problems else "no output",
            )
            return None
        self._smi_rows = self._smi_fresh = rows
        self._smi_problems(rows, problems)
        log.info("%s: %d NVIDIA GPU(s), read with nvidia-smi", self.host_entity, len(rows))
        return NVIDIA_SMI

    # ------------------------------------------------------------------ collect

    def collect(self) -> list[Reading]:
        """The readings of every GPU now (8 per GPU at most); [] without a GPU."""
        probing_now = not self._probed
        self._probe()
        if self._backend == NVML:
            return self._collect_nvml()
        if self._backend == NVIDIA_SMI:
            return self._collect_smi(probing_now)
        return []

    def _checked(self, index: int, sample: GpuSample) -> list[Reading]:
        entity = self._entity(index)
        kept, refused = gpu_readings(entity, sample)
        for what, value in refused:
            self.n_rejected += 1
            self._problem(
                (index, what, "bounds"), f"{entity}: {what} = {value!r} is out of bounds; left out"
            )
        return kept

    def _nvml_read(
        self, index: int | None, field: str, call: Callable[..., Any], *args: Any
    ) -> Any:
        """One NVML call; None when the GPU does not have the value or the call fails."""
        if (index, field) in self._unsupported:
            return None
        nvml = self._nvml
        try:
            return call(*args)
        except nvml.NVMLError as exc:
            where = self.host_entity if index is None else self._entity(index)
            if isinstance(exc, nvml.NVMLError_NotSupported):
                self._unsupported.add((index, field))
                log.debug("%s: %s is not supported; not asked again", where, field)
            else:
                self._problem((index, field), f"{where}: NVML could not read {field}: {exc}")
            return None

    def _nvml_number(
        self, index: int | None, field: str, value: Any, scale: float = 1.0
    ) -> float | None:
        if value is None:
            return None
        try:
            return float(value) * scale
        except (TypeError, ValueError):
            where = self.host_entity if index is None else self._entity(index)
            self._problem((index, field, "type"), f"{where}: NVML gave {field} = {value!r}")
            return None

    def _collect_nvml(self) -> list[Reading]:
        nvml = self._nvml
        out: list[Reading] = []
        for index, handle in self._handles:
            memory = self._nvml_read(
                index, "memory", nvml.nvmlDeviceGetMemoryInfo, handle, self._memory_version
            )
            utilization = self._nvml_read(
                index, "utilization", nvml.nvmlDeviceGetUtilizationRates, handle
            )
            temperature = self._nvml_read(
                index,
                "temperature",
                nvml.nvmlDeviceGetTemperature,
                handle,
                nvml.NVML_TEMPERATURE_GPU,
            )
            power = self._nvml_read(index, "power", nvml.nvmlDeviceGetPowerUsage, handle)
            limit = self._nvml_read(
                index, "power_limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle
            )
            fan = self._nvml_read(index, "fan", nvml.nvmlDeviceGetFanSpeed, handle)
            number = self._nvml_number
            sample = GpuSample(
                memory_total_bytes=number(index, "memory.total", _field(memory, "total")),
                memory_used_bytes=number(index, "memory.used", _field(memory, "used")),
                memory_free_bytes=number(index, "memory.free", _field(memory, "free")),
                utilization_percent=number(index, "utilization.gpu", _field(utilization, "gpu")),
                temperature_celsius=number(index, "temperature", temperature),
                power_watts=number(index, "power", power, 1e-3),
                power_limit_watts=number(index, "power_limit", limit, 1e-3),
                fan_percent=number(index, "fan", fan),
            )
            out += self._checked(index, sample)
        return out

    def _collect_smi(self, probing_now: bool) -> list[Reading]:
        # The probe has just run the query: its answer is this collection's.
        rows, self._smi_fresh = self._smi_fresh, None
        if rows is None or not probing_now:
            rows = self._query_smi()
        out: list[Reading] = []
        for row in rows:
            out += self._checked(row.index, row.sample)
        return out

    def _query_smi(self) -> list[SmiRow]:
        try:
            text = self._run(self._smi_argv, self._timeout_s)
        except SourceError as exc:
            self._problem(("smi", "run"), f"{self.host_entity}: no GPU readings this time: {exc}")
            return []
        rows, problems = parse_smi_query(text)
        self._smi_problems(rows, problems)
        if rows:
            self._smi_rows = rows
        return rows

    def _smi_problems(self, rows: list[SmiRow], problems: list[str]) -> None:
        if not rows and not problems:
            problems = ["no output"]
        for problem in problems:
            self._problem(
                ("smi", "line"), f"{self.host_entity}: nvidia-smi output not understood: {problem}"
            )
        for row in rows:
            for field in row.unreadable:
                self._problem(
                    (row.index, field, "smi"),
                    f"{self._entity(row.index)}: nvidia-smi gave no readable {field}",
                )

    # ------------------------------------------------------------------ inventory

    def inventory(self) -> list[InventoryItem]:
        """One `kind: "gpu"` item per GPU: index, name, uuid, memory_total_bytes,
        power_limit_default_watts, driver_version, cuda_version (None where unknown) and
        backend. nvidia-smi gives no default power limit here; its CUDA version is read once
        from the header of plain `nvidia-smi`. [] without a GPU."""
        self._probe()
        if self._backend == NVML:
            return self._nvml_inventory()
        if self._backend == NVIDIA_SMI:
            return self._smi_inventory()
        return []

    def _nvml_inventory(self) -> list[InventoryItem]:
        nvml = self._nvml
        driver = self._nvml_read(None, "driver_version", nvml.nvmlSystemGetDriverVersion)
        cuda = self._nvml_number(
            None,
            "cuda_version",
            self._nvml_read(None, "cuda_version", nvml.nvmlSystemGetCudaDriverVersion),
        )
        items: list[InventoryItem] = []
        for index, handle in self._handles:
            name = self._nvml_read(index, "name", nvml.nvmlDeviceGetName, handle)
            uuid = self._nvml_read(index, "uuid", nvml.nvmlDeviceGetUUID, handle)
            memory = self._nvml_read(
                index, "memory", nvml.nvmlDeviceGetMemoryInfo, handle, self._memory_version
            )
            total = self._nvml_number(index, "memory.total", _field(memory, "total"))
            default_limit = self._nvml_read(
                index,
                "power_limit_default",
                nvml.nvmlDeviceGetPowerManagementDefaultLimit,
                handle,
            )
            default_w = self._nvml_number(index, "power_limit_default", default_limit, 1e-3)
            items.append(
                self._item(
                    index,
                    name=None if name is None else _text(name),
                    uuid=None if uuid is None else _text(uuid),
                    memory_total_bytes=total,
                    power_limit_default_watts=default_w,
                    driver_version=None if driver is None else _text(driver),
                    cuda_version=None if cuda is None else cuda_version_text(int(cuda)),
                )
            )
        return items

    def _smi_inventory(self) -> list[InventoryItem]:
        if not self._smi_cuda_read:
            self._smi_cuda_read = True
            try:
                self._smi_cuda = cuda_version_from_header(
                    self._run(self._smi_argv[:1], self._timeout_s)
                )
            except SourceError as exc:
                log.debug("%s: no CUDA version from nvidia-smi: %s", self.host_entity, exc)
        return [
            self._item(
                row.index,
                name=row.name,
                uuid=row.uuid,
                memory_total_bytes=row.sample.memory_total_bytes,
                power_limit_default_watts=None,
                driver_version=row.driver_version,
                cuda_version=self._smi_cuda,
            )
            for row in self._smi_rows
        ]

    def _item(
        self,
        index: int,
        *,
        name: str | None,
        uuid: str | None,
        memory_total_bytes: float | None,
        power_limit_default_watts: float | None,
        driver_version: str | None,
        cuda_version: str | None,
    ) -> InventoryItem:
        total = memory_total_bytes
        limit = power_limit_default_watts
        return {
            "entity": self._entity(index),
            "kind": "gpu",
            "index": index,
            "name": name,
            "uuid": uuid,
            "memory_total_bytes": (
                int(total) if total is not None and 0 < total <= MAX_MEMORY_BYTES else None
            ),
            "power_limit_default_watts": (
                limit if limit is not None and 0 < limit <= MAX_POWER_W else None
            ),
            "driver_version": driver_version,
            "cuda_version": cuda_version,
            "backend": self._backend,
        }


def _field(struct: Any, name: str) -> Any:
    return None if struct is None else getattr(struct, name, None)
