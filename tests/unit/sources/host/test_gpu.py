"""The GPU collector: NVML through a fake that mirrors pynvml (checked against the installed
pynvml), the nvidia-smi fallback against recorded output, and this machine, which has no GPU.

Where the nvidia-smi output in `data/` comes from. The shape is what
`nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` prints: one line per GPU in
NVML's index order, no header, fields in the order asked, separated by ", ", numbers without
units (watts with two decimals, memory in MiB, percent and degrees as integers), `[N/A]` for a
value the board does not have and `[Not Supported]` from older drivers (nvidia-smi's manual
page, `nvidia-smi --help-query-gpu`; real lines quoted in public issues:
Ricks-Lab/gpu-utils#83, a GeForce RTX 2080 row with `--format=csv,noheader,nounits`;
plambe/zabbix-nvidia-smi-multi-gpu#9, `[Not Supported]` for fan.speed on a fanless
data-centre board; enkore/i3pystatus#776, newer drivers printing `[N/A]` where older ones
printed `[Not Supported]`; tutulino/Megaminer#235, a GeForce GTX 770 answering
`[Not Supported]` for utilization.gpu, power.draw and power.limit; the plain `nvidia-smi`
header with "CUDA Version: 12.2" in Akisoft41/py-nvtool#2 and "CUDA Version: N/A" in
influxdata/telegraf#6258). The files are written in that shape, not captured here (this
machine has no GPU): the values, UUIDs and the H200's 143771 MiB are illustrative.
`scripts/gpu_probe.py` prints a real machine's raw output, to replace them with a capture.

- `smi_h200_x8.csv`: an 8-GPU HGX H200 board, four GPUs busy, no fans (`[N/A]`);
- `smi_workstation.csv`: two GeForce boards with fans;
- `smi_old_driver.csv`: a GTX 770 on driver 384 (`[Not Supported]`);
- `smi_edge_cases.csv`: empty fields, `N/A` without brackets, `[Unknown Error]`, `nan`, a
  `[N/A]` UUID, values out of bounds (memory used above total, 250 °C, -5 °C, 20 kW);
- `smi_garbage.txt`: one good line among an error message, a cut line, a repeated index, a
  header line and XML;
- `smi_failed.txt`: what nvidia-smi prints when the driver is not loaded (it exits 9);
- `smi_header_h200.txt`: plain `nvidia-smi`, for the CUDA version.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import fake_nvml
import pynvml
import pytest
from fake_nvml import FakeGpu, FakeNvml, flaky, h100, rtx

from rackwatch.errors import SourceError, SourceTimeout
from rackwatch.model.catalogue import METRICS
from rackwatch.model.entity import validate
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.host.gpu import (
    NVIDIA_SMI,
    NVML,
    SMI_FIELDS,
    SMI_QUERY_ARGS,
    GpuCollector,
    parse_smi_query,
    run_command,
)
from rackwatch.sources.readings import Reading, to_batch

DATA = Path(__file__).parent / "data"
HOST = "host/gpu-box"
GPU_METRICS = {name for name in METRICS if name.startswith("gpu_")}
SMI_PATH = "/usr/bin/nvidia-smi"
MIB = 1024 * 1024  # nvidia-smi counts memory in MiB


def by_key(readings: Sequence[Reading]) -> dict[tuple[str, str], float]:
    keys = [(r.entity, r.metric) for r in readings]
    assert len(keys) == len(set(keys)), "one reading per series and collection"
    return {(r.entity, r.metric): r.value for r in readings}


class RecordedSmi:
    """Answers the collector's nvidia-smi commands from recorded output: the query with each
    of `answers` in turn (the last one repeats; an exception is raised), plain `nvidia-smi`
    with `header`."""

    def __init__(self, *answers: str | Exception, header: str | Exception = "") -> None:
        self.answers = list(answers)
        self.header = header
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> str:
        self.calls.append((tuple(argv), timeout_s))
        assert argv[0] == SMI_PATH
        if tuple(argv[1:]) == SMI_QUERY_ARGS:
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        else:
            assert len(argv) == 1, argv
            answer = self.header
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def n_queries(self) -> int:
        return sum(1 for argv, _ in self.calls if len(argv) > 1)


def smi_collector(
    *answers: str | Exception, header: str | Exception = "", nvml: object = None
) -> tuple[GpuCollector, RecordedSmi]:
    """A collector whose NVML cannot load (a fake answering LibraryNotFound) and whose
    nvidia-smi answers from recorded output."""
    smi = RecordedSmi(*answers, header=header)
    if nvml is None:
        nvml = FakeNvml([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    collector = GpuCollector(HOST, nvml=nvml, run=smi, which=lambda _name: SMI_PATH)
    return collector, smi


def recorded(name: str) -> str:
    return (DATA / name).read_text()


# ---------------------------------------------------------------------- the fake is pynvml


@pytest.mark.parametrize("name", fake_nvml.FUNCTIONS)
def test_each_fake_function_has_the_real_pynvml_signature(name: str) -> None:
    def shape(function: object) -> list[tuple[str, object, object]]:
        parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in parameters]

    assert hasattr(pynvml, name), f"pynvml has no {name}: the fake must not invent functions"
    assert shape(getattr(FakeNvml([]), name)) == shape(getattr(pynvml, name))


def test_the_fake_has_every_pynvml_function_the_collector_calls() -> None:
    source = Path(inspect.getfile(GpuCollector)).read_text()
    used = set(re.findall(r"\bnvml\.(nvml\w+)", source))
    assert {"nvmlInit", "nvmlShutdown", "nvmlDeviceGetFanSpeed"} <= used  # the scan works
    assert used <= set(dir(pynvml)), "the collector calls what pynvml has"
    assert used <= set(fake_nvml.FUNCTIONS), "and the fake has it too"


def test_the_fake_constants_and_error_classes_are_pynvml_s() -> None:
    for name in (*fake_nvml.CONSTANTS, "nvmlMemory_v2"):
        assert getattr(fake_nvml, name) == getattr(pynvml, name), name
    real_classes = {n for n in dir(pynvml) if n.startswith("NVMLError_")}
    assert set(fake_nvml.ERROR_CLASSES) <= real_classes
    for name in fake_nvml.ERROR_CLASSES:
        fake_cls, real_cls = getattr(fake_nvml, name), getattr(pynvml, name)
        assert issubclass(fake_cls, fake_nvml.NVMLError)
        assert fake_cls().value == real_cls().value, name
        # NVMLError(code) picks the subclass, as pynvml's _nvmlCheckReturn relies on
        assert type(fake_nvml.NVMLError(real_cls().value)).__name__ == name
        assert type(pynvml.NVMLError(real_cls().value)).__name__ == name
    assert isinstance(fake_nvml.error(3), fake_nvml.NVMLError_NotSupported)
    assert str(fake_nvml.error(12)) == str(pynvml.NVMLError(12)) == "NVML Shared Library Not Found"
    assert FakeNvml.NVMLError_NotSupported is fake_nvml.NVMLError_NotSupported


def test_the_fake_is_uninitialised_like_nvml_before_init_and_after_shutdown() -> None:
    nvml = FakeNvml([h100()])
    with pytest.raises(fake_nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 1
    nvml.nvmlShutdown()
    with pytest.raises(fake_nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


# ---------------------------------------------------------------------- NVML


def three_gpus(**options: object) -> FakeNvml:
    return FakeNvml([h100(0), rtx(1), flaky(2)], **options)  # type: ignore[arg-type]


def test_nvml_reads_every_gpu_in_base_units_and_a_failing_field_fails_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rackwatch.sources.host.gpu")
    nvml = three_gpus()
    collector = GpuCollector(HOST, nvml=nvml)
    assert collector.available and collector.backend == NVML

    got = by_key(collector.collect())

    h, r, a = f"{HOST}/gpu0", f"{HOST}/gpu1", f"{HOST}/gpu2"
    assert got[(h, "gpu_utilization_ratio")] == pytest.approx(0.97)
    assert got[(h, "gpu_memory_used_bytes")] == 44_040_192_000
    # NVML's v2 memory query: the driver's reserved memory is neither used nor free
    assert got[(h, "gpu_memory_free_bytes")] == 85_520_809_984 - 525_336_576 - 44_040_192_000
    assert got[(h, "gpu_memory_utilization_ratio")] == pytest.approx(
        44_040_192_000 / 85_520_809_984
    )
    assert got[(h, "gpu_temperature_celsius")] == 61
    assert got[(h, "gpu_power_watts")] == pytest.approx(612.4)
    assert got[(h, "gpu_power_limit_watts")] == pytest.approx(700.0)
    assert (h, "gpu_fan_ratio") not in got  # passively cooled: no reading, no series
    assert got[(r, "gpu_fan_ratio")] == pytest.approx(0.30)
    assert got[(r, "gpu_power_watts")] == pytest.approx(21.5)
    assert (a, "gpu_temperature_celsius") not in got  # NVML_ERROR_UNKNOWN for this one field
    assert got[(a, "gpu_power_watts")] == pytest.approx(61.0)  # ... the others are read
    assert got[(a, "gpu_utilization_ratio")] == 0.0  # a real 0, not left out
    assert {metric for _, metric in got} == GPU_METRICS
    assert len(got) == 8 + 7 + 6

    assert collector.n_errors == 1 and collector.n_rejected == 0
    assert "gpu2" in (collector.last_error or "") and "temperature" in (collector.last_error or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "gpu2" in warnings[0].getMessage()

    caplog.clear()
    collector.collect()
    assert collector.n_errors == 2  # counted again ...
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # ... logged at DEBUG
    assert any("gpu2" in r.getMessage() for r in caplog.records)


def test_a_driver_without_the_v2_memory_query_gives_v1_memory_without_an_error() -> None:
    nvml = FakeNvml([h100(0)], memory_v2=False)
    collector = GpuCollector(HOST, nvml=nvml)
    got = by_key(collector.collect())
    # v1 counts the reserved memory as used
    assert got[(f"{HOST}/gpu0", "gpu_memory_used_bytes")] == 44_040_192_000 + 525_336_576
    assert collector.n_errors == 0
    collector.collect()
    assert nvml.calls.count("nvmlDeviceGetMemoryInfo") == 1 + 2  # v2 tried once only


def test_readings_are_valid_series_for_the_store() -> None:
    readings = GpuCollector(HOST, nvml=three_gpus()).collect()
    registry = SeriesRegistry()
    batch = to_batch(readings, registry, 1_000)
    assert len(batch) == len(readings)
    keys = registry.keys()
    assert len(keys) == len(readings)
    for entity, metric in keys:
        assert validate(entity) and metric in METRICS


def test_not_supported_is_no_error_and_is_not_asked_again() -> None:
    nvml = FakeNvml([h100(0)])
    collector = GpuCollector(HOST, nvml=nvml)
    for _ in range(3):
        collector.collect()
    assert nvml.calls.count("nvmlDeviceGetFanSpeed") == 1
    assert nvml.calls.count("nvmlDeviceGetPowerUsage") == 3
    assert collector.n_errors == 0


def test_nvml_starts_once_at_first_use_and_close_shuts_it_down() -> None:
    nvml = three_gpus()
    collector = GpuCollector(HOST, nvml=nvml)
    assert nvml.calls == []  # constructing costs nothing
    collector.collect()
    collector.collect()
    collector.inventory()
    assert nvml.n_init == 1 and nvml.refcount == 1
    collector.close()
    collector.close()
    assert nvml.n_shutdown == 1 and nvml.refcount == 0
    n_calls = len(nvml.calls)
    assert collector.collect() == [] and collector.inventory() == []
    assert not collector.available
    assert len(nvml.calls) == n_calls  # nothing is asked of a shut-down NVML


def test_context_manager_closes() -> None:
    nvml = FakeNvml([rtx(0)])
    with GpuCollector(HOST, nvml=nvml) as collector:
        assert len(collector.collect()) == 8
    assert nvml.refcount == 0


@pytest.mark.parametrize("strings_as_bytes", [False, True])
def test_nvml_inventory(strings_as_bytes: bool) -> None:
    nvml = three_gpus(strings_as_bytes=strings_as_bytes, cuda_driver_version=12040)
    items = GpuCollector(HOST, nvml=nvml).inventory()
    assert [item["entity"] for item in items] == [f"{HOST}/gpu{i}" for i in range(3)]
    first = items[0]
    assert first == {
        "entity": f"{HOST}/gpu0",
        "kind": "gpu",
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",  # str even where pynvml gives bytes
        "uuid": "GPU-6f3c1b2a-1d4e-4c8b-9a7f-000000000000",
        "memory_total_bytes": 85_520_809_984,
        "power_limit_default_watts": pytest.approx(700.0),
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "backend": "nvml",
    }
    assert items[1]["name"] == "NVIDIA GeForce RTX 4090"
    assert all(type(item["name"]) is str and type(item["uuid"]) is str for item in items)


def test_an_unsupported_default_power_limit_is_none_in_the_inventory() -> None:
    gpu = rtx(0)
    gpu.default_power_limit_mw = None
    [item] = GpuCollector(HOST, nvml=FakeNvml([gpu])).inventory()
    assert item["power_limit_default_watts"] is None
    assert item["memory_total_bytes"] == gpu.memory_total


def test_values_out_of_bounds_are_refused_and_counted() -> None:
    broken = FakeGpu(
        name="broken",
        uuid="GPU-broken",
        memory_total=1_000,
        memory_used=2_000,  # more than total
        utilization_gpu=150,  # percent above 100
        temperature=250,  # above 200 °C
        power_mw=20_000_000,  # 20 kW
        power_limit_mw=300_000,
        fan_percent=105,  # NVIDIA: may exceed 100 %; kept
        memory_free=0,
    )
    collector = GpuCollector(HOST, nvml=FakeNvml([broken]))
    got = by_key(collector.collect())
    entity = f"{HOST}/gpu0"
    assert set(got) == {
        (entity, "gpu_power_limit_watts"),
        (entity, "gpu_fan_ratio"),
        (entity, "gpu_memory_free_bytes"),
    }
    assert got[(entity, "gpu_fan_ratio")] == pytest.approx(1.05)
    assert collector.n_rejected == 4  # utilization, memory used, temperature, power
    assert collector.n_errors == 4


def test_a_gpu_without_a_handle_is_left_out_and_the_others_are_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = h100(1)
    lost.errors["nvmlDeviceGetHandleByIndex"] = fake_nvml.NVML_ERROR_GPU_IS_LOST
    collector = GpuCollector(HOST, nvml=FakeNvml([rtx(0), lost]))
    entities = {r.entity for r in collector.collect()}
    assert entities == {f"{HOST}/gpu0"}
    assert collector.n_errors == 1
    assert "GPU is lost" in caplog.text


def test_nvml_with_no_gpu_is_absent_and_shut_down() -> None:
    nvml = FakeNvml([])
    collector = GpuCollector(HOST, nvml=nvml, which=lambda _name: None)
    assert not collector.available and collector.collect() == []
    assert nvml.n_init == 1 and nvml.refcount == 0


# ---------------------------------------------------------------------- the fallback


@pytest.mark.parametrize(
    "code", [fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND, fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED]
)
def test_nvidia_smi_is_used_when_nvml_cannot_load(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    collector, _ = smi_collector(
        recorded("smi_workstation.csv"), nvml=FakeNvml([], init_error=code)
    )
    assert collector.backend == NVIDIA_SMI
    assert collector.n_errors == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_nvidia_smi_is_used_when_pynvml_does_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    smi = RecordedSmi(recorded("smi_workstation.csv"))
    collector = GpuCollector(HOST, run=smi, which=lambda _name: SMI_PATH)
    assert collector.backend == NVIDIA_SMI


def test_an_unexpected_nvml_error_at_start_is_a_warning_then_nvidia_smi(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNvml([], init_error=fake_nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    collector, _ = smi_collector(recorded("smi_workstation.csv"), nvml=nvml)
    assert collector.backend == NVIDIA_SMI
    assert collector.n_errors == 1
    assert "version mismatch" in caplog.text


def test_only_the_backends_asked_for_are_tried() -> None:
    nvml = three_gpus()
    smi = RecordedSmi(recorded("smi_workstation.csv"))
    collector = GpuCollector(
        HOST, nvml=nvml, run=smi, which=lambda _name: SMI_PATH, backends=(NVIDIA_SMI,)
    )
    assert collector.backend == NVIDIA_SMI and nvml.calls == []
    with pytest.raises(ValueError, match="unknown GPU backend"):
        GpuCollector(HOST, backends=("rocm",))
    with pytest.raises(ValueError, match="entity"):
        GpuCollector("host/bad name")


# ---------------------------------------------------------------------- nvidia-smi output


def test_eight_h200s_from_nvidia_smi() -> None:
    collector, smi = smi_collector(
        recorded("smi_h200_x8.csv"), header=recorded("smi_header_h200.txt")
    )
    got = by_key(collector.collect())
    assert smi.n_queries == 1  # the probe's answer is the first collection's
    assert {entity for entity, _ in got} == {f"{HOST}/gpu{i}" for i in range(8)}
    assert len(got) == 8 * 7  # no fan on any: [N/A]
    g0, g4 = f"{HOST}/gpu0", f"{HOST}/gpu4"
    assert got[(g0, "gpu_memory_used_bytes")] == 131338 * MIB
    assert got[(g0, "gpu_memory_free_bytes")] == 11909 * MIB
    assert got[(g0, "gpu_memory_utilization_ratio")] == pytest.approx(131338 / 143771)
    assert got[(g0, "gpu_utilization_ratio")] == 1.0
    assert got[(g0, "gpu_temperature_celsius")] == 67
    assert got[(g0, "gpu_power_watts")] == pytest.approx(689.42)
    assert got[(g0, "gpu_power_limit_watts")] == 700.0
    assert got[(g4, "gpu_utilization_ratio")] == 0.0 and got[(g4, "gpu_memory_used_bytes")] == 0
    assert collector.n_errors == 0

    collector.collect()
    assert smi.n_queries == 2  # then one query per collection
    assert all(timeout == 5.0 for _, timeout in smi.calls)

    items = collector.inventory()
    assert len(items) == 8
    assert items[3] == {
        "entity": f"{HOST}/gpu3",
        "kind": "gpu",
        "index": 3,
        "name": "NVIDIA H200",
        "uuid": "GPU-d09b6e2a-7c41-35f8-b6e0-2a8c1f7d9e40",
        "memory_total_bytes": 143771 * MIB,
        "power_limit_default_watts": None,
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "backend": "nvidia-smi",
    }
    collector.inventory()
    assert len(smi.calls) - smi.n_queries == 1  # the header is read once


def test_fans_and_not_supported_fields_from_nvidia_smi() -> None:
    collector, _ = smi_collector(recorded("smi_workstation.csv"))
    got = by_key(collector.collect())
    assert got[(f"{HOST}/gpu0", "gpu_fan_ratio")] == pytest.approx(0.30)
    assert got[(f"{HOST}/gpu1", "gpu_fan_ratio")] == pytest.approx(0.64)
    assert got[(f"{HOST}/gpu1", "gpu_power_watts")] == pytest.approx(151.32)

    collector, _ = smi_collector(recorded("smi_old_driver.csv"))
    got = by_key(collector.collect())
    entity = f"{HOST}/gpu0"
    assert {metric for _, metric in got} == {
        "gpu_memory_used_bytes",
        "gpu_memory_free_bytes",
        "gpu_memory_utilization_ratio",
        "gpu_temperature_celsius",
        "gpu_fan_ratio",
    }  # [Not Supported]: utilization, power draw, power limit
    assert got[(entity, "gpu_temperature_celsius")] == 52
    assert collector.n_errors == 0  # a value the board lacks is not an error
    [item] = collector.inventory()
    assert item["driver_version"] == "384.130" and item["cuda_version"] is None


def test_odd_fields_from_nvidia_smi_give_no_reading_and_bad_ones_are_counted() -> None:
    collector, _ = smi_collector(recorded("smi_edge_cases.csv"))
    got = by_key(collector.collect())
    g0, g1, g2 = (f"{HOST}/gpu{i}" for i in range(3))
    # gpu0: empty memory.used, unbracketed N/A: no reading, no error
    assert {m for e, m in got if e == g0} == {
        "gpu_memory_free_bytes",
        "gpu_temperature_celsius",
        "gpu_power_limit_watts",
    }
    # gpu1: memory used above total, 250 °C (refused), [Unknown Error] power (unreadable)
    assert {m for e, m in got if e == g1} == {
        "gpu_memory_free_bytes",
        "gpu_utilization_ratio",
        "gpu_power_limit_watts",
    }
    # gpu2: nan utilization (unreadable), -5 °C and 20 kW (refused)
    assert {m for e, m in got if e == g2} == {
        "gpu_memory_used_bytes",
        "gpu_memory_free_bytes",
        "gpu_memory_utilization_ratio",
        "gpu_power_limit_watts",
    }
    assert collector.n_rejected == 4
    assert collector.n_errors == 4 + 2
    items = collector.inventory()
    assert [item["uuid"] for item in items][1:] == [
        "GPU-edge0000-0000-4000-8000-000000000001",
        None,
    ]
    assert items[0]["memory_total_bytes"] == 23034 * MIB
    assert all(math.isfinite(v) and v >= 0 for v in got.values())


def test_garbage_from_nvidia_smi_is_counted_and_the_good_lines_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rackwatch.sources.host.gpu")
    rows, problems = parse_smi_query(recorded("smi_garbage.txt"))
    assert [row.index for row in rows] == [0]
    assert len(problems) == 6
    assert any("GPU 0 again" in p for p in problems) and any("no GPU index" in p for p in problems)

    collector, _ = smi_collector(recorded("smi_garbage.txt"))
    got = by_key(collector.collect())
    assert {entity for entity, _ in got} == {f"{HOST}/gpu0"}
    assert collector.n_errors == 6
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one warning for the kind of problem; the rest at DEBUG
    assert "not understood" in warnings[0].getMessage()


def test_nvidia_smi_that_fails_or_hangs_gives_nothing_that_time_and_recovers() -> None:
    collector, _ = smi_collector(
        recorded("smi_workstation.csv"),
        SourceTimeout("nvidia-smi did not answer within 5 s"),
        recorded("smi_failed.txt"),  # printed with exit status 0: no row in it
        SourceError("nvidia-smi exited with status 9: NVIDIA-SMI has failed"),
        recorded("smi_workstation.csv"),
    )
    assert len(collector.collect()) == 16  # the probe's answer
    assert collector.collect() == []
    assert collector.n_errors == 1 and "did not answer" in (collector.last_error or "")
    assert collector.collect() == []
    assert collector.n_errors == 2 and "couldn't communicate" in (collector.last_error or "")
    assert collector.collect() == []
    assert collector.n_errors == 3
    assert len(collector.collect()) == 16
    assert len(collector.inventory()) == 2  # the last GPUs it listed


def test_nvidia_smi_installed_without_a_driver_is_absent() -> None:
    failed = SourceError("nvidia-smi exited with status 9: NVIDIA-SMI has failed because ...")
    collector, smi = smi_collector(failed)
    assert not collector.available
    assert collector.collect() == [] and collector.inventory() == []
    assert smi.n_queries == 1  # not asked again
    collector, smi = smi_collector(recorded("smi_failed.txt"))
    assert not collector.available and collector.collect() == []


def test_without_nvidia_smi_nothing_is_run_and_the_lookup_is_done_once() -> None:
    lookups: list[str] = []
    smi = RecordedSmi(recorded("smi_workstation.csv"))

    def which(name: str) -> str | None:
        lookups.append(name)
        return None

    nvml = FakeNvml([], init_error=fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    collector = GpuCollector(HOST, nvml=nvml, run=smi, which=which)
    for _ in range(3):
        assert collector.collect() == []
    assert collector.inventory() == [] and not collector.available
    assert lookups == ["nvidia-smi"]
    assert smi.calls == []
    assert nvml.calls == ["nvmlInit"]  # NVML is not tried again either


def test_the_query_asks_for_the_fields_in_the_order_parsed() -> None:
    assert SMI_QUERY_ARGS[0] == "--query-gpu=" + ",".join(SMI_FIELDS)
    assert SMI_QUERY_ARGS[1] == "--format=csv,noheader,nounits"
    assert SMI_FIELDS[:4] == ("index", "name", "uuid", "driver_version")


# ---------------------------------------------------------------------- the real command runner


def test_run_command_returns_stdout_and_reports_failure_and_timeout() -> None:
    python = sys.executable
    assert run_command([python, "-c", "print('0, ok')"], 10.0) == "0, ok\n"
    # the C locale: decimal points and English messages whatever the machine's locale
    show_locale = "import os; print(os.environ['LC_ALL'])"
    assert run_command([python, "-c", show_locale], 10.0) == "C\n"
    with pytest.raises(SourceError, match=r"status 9: NVIDIA-SMI has failed") as failed:
        run_command([python, "-c", "print('NVIDIA-SMI has failed'); raise SystemExit(9)"], 10.0)
    assert not isinstance(failed.value, SourceTimeout)
    with pytest.raises(SourceTimeout, match=r"did not answer within 0\.2 s"):
        run_command([python, "-c", "import time; time.sleep(10)"], 0.2)
    with pytest.raises(SourceError, match="could not be run"):
        run_command(["/nonexistent/nvidia-smi"], 1.0)


# ---------------------------------------------------------------------- this machine


def _machine_has_an_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is not None:
        return True
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_machine_has_an_nvidia_gpu(), reason="this machine has an NVIDIA GPU")
def test_this_machine_without_a_gpu_gives_nothing_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):  # the real NVML fails here
        pynvml.nvmlInit()
    collector = GpuCollector(HOST)  # the real pynvml, the real shutil.which
    assert collector.collect() == []
    assert collector.collect() == []
    assert collector.inventory() == []
    assert not collector.available and collector.backend is None
    assert collector.n_errors == 0 and collector.last_error is None
    assert [r.levelno for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert any("no NVIDIA GPU" in r.getMessage() for r in caplog.records)
    collector.close()
