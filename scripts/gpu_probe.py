"""Print what rackwatch's GPU collector sees on this machine, as one JSON document.

Run it from a checkout on a machine with NVIDIA GPUs (nvidia-ml-py installed):

    PYTHONPATH=src python scripts/gpu_probe.py > gpu-probe.json

For each backend (the automatic choice, then NVML alone, then nvidia-smi alone): whether it is
available, the inventory, two collections `--interval` seconds apart with their cost, and the
collector's error counters. Also nvidia-smi's raw output for the collector's query and its
plain header, to be kept as recorded fixtures in tests/unit/sources/host/data/. Log lines
(the collector's warnings) go to stderr. Without a GPU it prints `"available": false` for
each backend and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import platform
import shutil
import socket
import sys
import time
from typing import Any

from rackwatch.errors import SourceError
from rackwatch.sources.host.gpu import (
    BACKENDS,
    DEFAULT_TIMEOUT_S,
    SMI_QUERY_ARGS,
    GpuCollector,
    run_command,
)
from rackwatch.sources.readings import segment


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe(host_entity: str, backends: tuple[str, ...], interval_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    collector = GpuCollector(host_entity, backends=backends)
    try:
        available = collector.available
        result: dict[str, Any] = {
            "backends_tried": list(backends),
            "backend": collector.backend,
            "available": available,
            "probe_ms": round((time.perf_counter() - started) * 1000, 3),
            "inventory": collector.inventory(),
            "collections": [],
        }
        for k in range(2):
            if k:
                time.sleep(interval_s)
            t0 = time.perf_counter()
            readings = collector.collect()
            result["collections"].append(
                {
                    "wall_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "collect_ms": round((time.perf_counter() - t0) * 1000, 3),
                    "n_readings": len(readings),
                    "readings": [
                        {"entity": r.entity, "metric": r.metric, "value": r.value} for r in readings
                    ],
                }
            )
        result["n_errors"] = collector.n_errors
        result["n_rejected"] = collector.n_rejected
        result["last_error"] = collector.last_error
        return result
    finally:
        collector.close()


def raw_smi(timeout_s: float) -> dict[str, Any]:
    path = shutil.which("nvidia-smi")
    out: dict[str, Any] = {"path": path, "query_args": list(SMI_QUERY_ARGS)}
    if path is None:
        return out
    for key, argv in (("query", [path, *SMI_QUERY_ARGS]), ("plain", [path])):
        try:
            out[key] = run_command(argv, timeout_s)
        except SourceError as exc:
            out[key + "_error"] = str(exc)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", help="host name in the entity (default: this hostname)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between collections")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="nvidia-smi")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

    host_entity = "host/" + segment(args.name or socket.gethostname())
    report: dict[str, Any] = {
        "host_entity": host_entity,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nvidia_ml_py": _version("nvidia-ml-py"),
        "rackwatch": _version("rackwatch"),
        "auto": probe(host_entity, BACKENDS, args.interval),
    }
    for backend in BACKENDS:
        report[backend] = probe(host_entity, (backend,), args.interval)
    report["nvidia_smi_raw"] = raw_smi(args.timeout)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
