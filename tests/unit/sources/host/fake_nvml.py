"""A stand-in for nvidia-ml-py's `pynvml` module, for machines without an NVIDIA GPU.

It mirrors the parts of pynvml (13.x) that rackwatch calls: the same function names and
parameters (`test_gpu.py` checks them against the installed pynvml with `inspect.signature`),
the same constants, the same error classes made the way pynvml makes them (`NVMLError(code)`
returns the subclass for that code, e.g. `NVMLError_NotSupported`, with `.value == code`), and
the same result types (pynvml's own ctypes structures for memory and utilization). Strings
come back as `str`, as pynvml has returned them since 11.515.48 (`strings_as_bytes=True` gives
the `bytes` of older versions).

Like the real library, every call but `nvmlInit` raises NVMLError_Uninitialized while NVML is
not initialised (before `nvmlInit`, after the matching `nvmlShutdown`).
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from typing import Any

import pynvml  # only for its ctypes result structures, which need no library

NVML_SUCCESS = 0
NVML_TEMPERATURE_GPU = 0
NVML_TEMPERATURE_GPU_MAX = 1

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999

nvmlMemory_v2 = 0x02000028


class NVMLError(Exception):
    """pynvml's base error: `NVMLError(code)` is an instance of the subclass for `code`."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 (pynvml's own shape)
    _errcode_to_string = {  # noqa: RUF012
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls == NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return self._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value


def _extract_errors_as_classes() -> None:
    """pynvml's `_extractNVMLErrorsAsClasses`: NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost."""
    this_module = sys.modules[__name__]
    for err_name in [x for x in dir(this_module) if x.startswith("NVML_ERROR_")]:
        class_name = "NVMLError_" + string.capwords(
            err_name.replace("NVML_ERROR_", ""), "_"
        ).replace("_", "")
        err_val = getattr(this_module, err_name)

        def gen_new(val: int) -> Any:
            def new(typ: type[NVMLError], *_args: object) -> NVMLError:
                return NVMLError.__new__(typ, val)

            return new

        new_error_class = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        new_error_class.__module__ = __name__
        setattr(this_module, class_name, new_error_class)
        NVMLError._valClassMapping[err_val] = new_error_class


_extract_errors_as_classes()


def error(code: int) -> NVMLError:
    """The error NVML raises for `code`, as pynvml's `_nvmlCheckReturn` makes it."""
    return NVMLError(code)


# ---------------------------------------------------------------------- the fake GPUs


@dataclass
class FakeGpu:
    """One GPU's answers. Power in milliwatts, memory in bytes, as NVML gives them."""

    name: str
    uuid: str
    memory_total: int
    memory_used: int
    utilization_gpu: int = 0
    utilization_memory: int = 0
    temperature: int = 40
    power_mw: int = 100_000
    power_limit_mw: int = 300_000
    default_power_limit_mw: int | None = 300_000
    fan_percent: int | None = None
    """None: a passively cooled board (nvmlDeviceGetFanSpeed raises NotSupported)."""
    memory_free: int | None = None
    """None: total less reserved less used."""
    memory_reserved: int = 0
    """Set aside by the driver: version 1 of the memory query counts it as used."""
    errors: dict[str, int] = field(default_factory=dict)
    """Function name -> the NVML error code it raises for this GPU."""

    @property
    def free(self) -> int:
        if self.memory_free is not None:
            return self.memory_free
        return self.memory_total - self.memory_reserved - self.memory_used


GIB = 1 << 30


def h100(index: int = 0) -> FakeGpu:
    """A passively cooled data-centre board: no fan (NotSupported)."""
    return FakeGpu(
        name="NVIDIA H100 80GB HBM3",
        uuid=f"GPU-6f3c1b2a-1d4e-4c8b-9a7f-00000000000{index}",
        memory_total=85_520_809_984,  # 81559 MiB
        memory_used=44_040_192_000,
        memory_reserved=525_336_576,  # 501 MiB set aside by the driver
        utilization_gpu=97,
        utilization_memory=41,
        temperature=61,
        power_mw=612_400,
        power_limit_mw=700_000,
        default_power_limit_mw=700_000,
        fan_percent=None,
    )


def rtx(index: int = 1) -> FakeGpu:
    """A workstation board with its own fan."""
    return FakeGpu(
        name="NVIDIA GeForce RTX 4090",
        uuid=f"GPU-0b7e9d44-5a21-4f0e-8c3d-00000000000{index}",
        memory_total=25_757_220_864,  # 24564 MiB
        memory_used=536_870_912,
        utilization_gpu=3,
        utilization_memory=1,
        temperature=38,
        power_mw=21_500,
        power_limit_mw=450_000,
        default_power_limit_mw=450_000,
        fan_percent=30,
    )


def flaky(index: int = 2) -> FakeGpu:
    """A board whose temperature sensor answers NVML_ERROR_UNKNOWN."""
    return FakeGpu(
        name="NVIDIA A100-SXM4-80GB",
        uuid=f"GPU-a100a100-0000-4000-8000-00000000000{index}",
        memory_total=85_899_345_920,
        memory_used=0,
        utilization_gpu=0,
        temperature=33,
        power_mw=61_000,
        power_limit_mw=400_000,
        default_power_limit_mw=400_000,
        fan_percent=None,
        errors={"nvmlDeviceGetTemperature": NVML_ERROR_UNKNOWN},
    )


@dataclass(frozen=True)
class FakeHandle:
    """Stands for pynvml's `c_nvmlDevice_t` (an opaque pointer)."""

    index: int


class FakeNvml:
    """The `pynvml` module over `gpus`: pass it as `GpuCollector(..., nvml=FakeNvml(...))`.

    `init_error`: the NVML error code `nvmlInit` raises (NVML_ERROR_LIBRARY_NOT_FOUND on a
    machine without the driver). `memory_v2=False`: a driver older than R510, without
    `nvmlDeviceGetMemoryInfo_v2` (pynvml raises FunctionNotFound). `calls` records every
    function called, by name.
    """

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        init_error: int | None = None,
        strings_as_bytes: bool = False,
        memory_v2: bool = True,
    ) -> None:
        self.gpus = gpus
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.init_error = init_error
        self.strings_as_bytes = strings_as_bytes
        self.memory_v2 = memory_v2
        self.refcount = 0
        self.n_init = 0
        self.n_shutdown = 0
        self.calls: list[str] = []

    # ------------------------------------------------------------------ plumbing

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, name: str, handle: Any) -> FakeGpu:
        self._enter(name)
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if name in gpu.errors:
            raise NVMLError(gpu.errors[name])
        return gpu

    def _string(self, text: str) -> str | bytes:
        return text.encode() if self.strings_as_bytes else text

    # ------------------------------------------------------------------ pynvml's functions

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1
        self.n_init += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.refcount -= 1
        self.n_shutdown += 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._enter("nvmlSystemGetDriverVersion")
        return self._string(self.driver_version)

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if "nvmlDeviceGetHandleByIndex" in self.gpus[index].errors:
            raise NVMLError(self.gpus[index].errors["nvmlDeviceGetHandleByIndex"])
        return FakeHandle(index)

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._string(self._gpu("nvmlDeviceGetName", handle).name)

    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes:
        return self._string(self._gpu("nvmlDeviceGetUUID", handle).uuid)

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        if not version:  # v1: the reserved memory is in `used`
            return pynvml.c_nvmlMemory_t(
                total=gpu.memory_total, free=gpu.free, used=gpu.memory_used + gpu.memory_reserved
            )
        if not self.memory_v2:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        if version != nvmlMemory_v2:
            raise NVMLError(NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return pynvml.c_nvmlMemory_v2_t(
            version=version,
            total=gpu.memory_total,
            reserved=gpu.memory_reserved,
            free=gpu.free,
            used=gpu.memory_used,
        )

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        return pynvml.c_nvmlUtilization_t(gpu=gpu.utilization_gpu, memory=gpu.utilization_memory)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).power_limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetPowerManagementDefaultLimit", handle)
        if gpu.default_power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.default_power_limit_mw

    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int:
        gpu = self._gpu("nvmlDeviceGetFanSpeed", handle)
        if gpu.fan_percent is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.fan_percent


FUNCTIONS = tuple(name for name in vars(FakeNvml) if name.startswith("nvml"))
"""The pynvml functions the fake provides (each is checked against the real one)."""
CONSTANTS = tuple(name for name in dir(sys.modules[__name__]) if name.startswith("NVML_"))
ERROR_CLASSES = tuple(name for name in dir(sys.modules[__name__]) if name.startswith("NVMLError_"))

# The fake answers `nvml.NVMLError_NotSupported`, `nvml.NVML_TEMPERATURE_GPU`, ... like the module.
for _name in (*CONSTANTS, *ERROR_CLASSES, "NVMLError", "nvmlMemory_v2"):
    setattr(FakeNvml, _name, getattr(sys.modules[__name__], _name))
