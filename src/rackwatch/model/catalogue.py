"""The one metric table: name -> MetricSpec. Names follow Prometheus conventions (base units in
the name, ratios 0..1, counters end in `_total`). docs/METRICS.md is checked against it by a test.

The `kind` decides how a rollup reads: a gauge's `avg` is meaningful; a state's `close` is its
value at the end of the window; a counter's `close - open` is its increase.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MetricKind(enum.StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    STATE = "state"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    kind: MetricKind
    help: str
    resolution: float | None = None
    """Smallest step a real sensor reports (e.g. 0.1 °C); the twin rounds to it."""


_G, _S, _C = MetricKind.GAUGE, MetricKind.STATE, MetricKind.COUNTER

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        # server
        MetricSpec("cpu_temperature_celsius", "celsius", _G, "CPU package temperature.", 0.1),
        MetricSpec(
            "inlet_temperature_celsius",
            "celsius",
            _G,
            "Air temperature at the server's front intake.",
            0.1,
        ),
        MetricSpec(
            "chassis_temperature_celsius",
            "celsius",
            _G,
            "Air temperature inside the chassis, at the exhaust.",
            0.1,
        ),
        MetricSpec(
            "power_watts", "watts", _G, "Electrical power drawn by the server, fans included.", 1.0
        ),
        MetricSpec(
            "airflow_cfm",
            "cfm",
            _G,
            "Air volume moved through the server by its fans (cubic feet per minute).",
            0.1,
        ),
        MetricSpec(
            "cpu_utilization_ratio", "ratio", _G, "CPU busy time over wall time, 0..1.", 0.001
        ),
        MetricSpec(
            "disk_ok",
            "boolean",
            _S,
            "1 while the server's disk answers, 0 once it has failed.",
            1.0,
        ),
        # fan (component of a server)
        MetricSpec(
            "fan_level", "level", _S, "Commanded fan level: 0 off, 1 low, 2 medium, 3 high.", 1.0
        ),
        MetricSpec("fan_rpm", "rpm", _G, "Measured fan speed.", 10.0),
        MetricSpec("fan_power_watts", "watts", _G, "Electrical power drawn by the fan.", 0.1),
        # rack PDU
        MetricSpec(
            "pdu_power_watts",
            "watts",
            _G,
            "Power delivered by the rack PDU to all its servers.",
            1.0,
        ),
        MetricSpec(
            "pdu_capacity_watts",
            "watts",
            _G,
            "Power the PDU lets through before it caps (a cap fault lowers it).",
            1.0,
        ),
        # PDU outlet (read over SNMP, sources/snmp)
        MetricSpec(
            "outlet_power_watts", "watts", _G, "Power drawn through one outlet of a PDU.", 1.0
        ),
        MetricSpec(
            "outlet_current_amperes",
            "amperes",
            _G,
            "Current drawn through one outlet of a PDU.",
            0.1,
        ),
        MetricSpec(
            "outlet_on", "boolean", _S, "1 while the PDU outlet is switched on, 0 off.", 1.0
        ),
        # room
        MetricSpec(
            "crac_supply_temperature_celsius",
            "celsius",
            _G,
            "Cold air temperature supplied by the CRAC unit.",
            0.1,
        ),
        MetricSpec(
            "crac_power_watts",
            "watts",
            _G,
            "Electrical power drawn by the CRAC unit (cooling).",
            1.0,
        ),
        MetricSpec(
            "it_power_watts", "watts", _G, "Power drawn by all IT equipment in the room.", 1.0
        ),
        MetricSpec(
            "facility_power_watts",
            "watts",
            _G,
            "Total room power: IT, cooling and distribution losses.",
            1.0,
        ),
        MetricSpec(
            "pue_ratio",
            "ratio",
            _G,
            "Power usage effectiveness: facility power over IT power.",
            0.001,
        ),
        # host (a real machine: `host/<name>`, its cores, disks, interfaces, sensors, GPUs)
        MetricSpec("cpu_frequency_hertz", "hertz", _G, "Current CPU clock frequency.", 1e6),
        MetricSpec("load_average_1m", "load", _G, "Runnable tasks, averaged over 1 minute."),
        MetricSpec("load_average_5m", "load", _G, "Runnable tasks, averaged over 5 minutes."),
        MetricSpec("load_average_15m", "load", _G, "Runnable tasks, averaged over 15 minutes."),
        MetricSpec("memory_used_bytes", "bytes", _G, "Memory in use (total less available)."),
        MetricSpec(
            "memory_available_bytes", "bytes", _G, "Memory available to new work without swapping."
        ),
        MetricSpec(
            "memory_utilization_ratio", "ratio", _G, "Memory in use over total memory, 0..1.", 0.001
        ),
        MetricSpec("swap_used_bytes", "bytes", _G, "Swap space in use."),
        MetricSpec(
            "swap_utilization_ratio", "ratio", _G, "Swap in use over total swap, 0..1.", 0.001
        ),
        MetricSpec("uptime_seconds", "seconds", _G, "Time since the host booted.", 1.0),
        MetricSpec("process_count", "processes", _G, "Processes running on the host.", 1.0),
        MetricSpec("user_session_count", "sessions", _G, "Users logged in to the host.", 1.0),
        MetricSpec("disk_used_bytes", "bytes", _G, "Space used on a mounted file system."),
        MetricSpec("disk_free_bytes", "bytes", _G, "Space free on a mounted file system."),
        MetricSpec(
            "disk_utilization_ratio",
            "ratio",
            _G,
            "Space used over the space usable (used + free, as df shows it), 0..1.",
            0.001,
        ),
        MetricSpec(
            "disk_read_bytes_per_second", "bytes_per_second", _G, "Bytes read from the device."
        ),
        MetricSpec(
            "disk_write_bytes_per_second", "bytes_per_second", _G, "Bytes written to the device."
        ),
        MetricSpec(
            "network_receive_bytes_per_second",
            "bytes_per_second",
            _G,
            "Bytes received on a network interface.",
        ),
        MetricSpec(
            "network_transmit_bytes_per_second",
            "bytes_per_second",
            _G,
            "Bytes sent on a network interface.",
        ),
        MetricSpec(
            "network_receive_bytes_total",
            "bytes",
            _C,
            "Bytes received on a network interface since the host booted.",
        ),
        MetricSpec(
            "network_transmit_bytes_total",
            "bytes",
            _C,
            "Bytes sent on a network interface since the host booted.",
        ),
        MetricSpec(
            "temperature_celsius", "celsius", _G, "A hardware temperature sensor's reading.", 0.1
        ),
        # GPU (component of a host: `host/<name>/gpu0`)
        MetricSpec(
            "gpu_utilization_ratio",
            "ratio",
            _G,
            "Time the GPU ran a kernel over the sample period, 0..1.",
            0.01,
        ),
        MetricSpec("gpu_memory_used_bytes", "bytes", _G, "GPU memory allocated."),
        MetricSpec("gpu_memory_free_bytes", "bytes", _G, "GPU memory free."),
        MetricSpec(
            "gpu_memory_utilization_ratio",
            "ratio",
            _G,
            "GPU memory allocated over the GPU's total memory, 0..1.",
            0.001,
        ),
        MetricSpec("gpu_temperature_celsius", "celsius", _G, "GPU core temperature.", 1.0),
        MetricSpec("gpu_power_watts", "watts", _G, "Power drawn by the GPU board.", 0.001),
        MetricSpec("gpu_power_limit_watts", "watts", _G, "Power limit the GPU is held to.", 0.001),
        MetricSpec(
            "gpu_fan_ratio",
            "ratio",
            _G,
            "GPU fan speed over its nominal maximum (NVIDIA allows a little above 1).",
            0.01,
        ),
        # a scraped application (sources/scrape_loop.py): seed 002's four signals
        MetricSpec(
            "app_cpu_usage_ratio",
            "ratio",
            _G,
            "CPU used by the application's process (process_cpu_usage), 0..1: seed 002's "
            "cpu_usage.",
        ),
        MetricSpec(
            "app_jvm_memory_usage_ratio",
            "ratio",
            _G,
            "JVM memory used over its maximum, each summed over the pools "
            "(jvm_memory_used_bytes / jvm_memory_max_bytes): seed 002's jvm_memory_usage.",
        ),
        MetricSpec(
            "app_request_rate_per_second",
            "requests_per_second",
            _G,
            "Requests served per second, succeeded and failed, between the last two scrapes "
            "(irate of http_server_requests_seconds_count): seed 002's request_count.",
        ),
        MetricSpec(
            "app_response_time_seconds",
            "seconds",
            _G,
            "Mean response time of the requests between the last two scrapes (irate of "
            "http_server_requests_seconds_sum over _count): seed 002's response_time.",
        ),
        # derived by rackwatch (engine/intelligence): every device, rack, cluster and the room
        MetricSpec(
            "health_score",
            "score",
            _G,
            "Health 0-100 (100: nothing wrong), sampled every minute: docs/PREDICTION.md.",
            0.1,
        ),
        MetricSpec(
            "anomaly_score",
            "score",
            _G,
            "Highest score 0-1 of the device's open anomalies (0: none), sampled every minute.",
            0.001,
        ),
        MetricSpec(
            "time_to_failure_seconds",
            "seconds",
            _G,
            "Predicted time until the fan fails (sampled every minute while a prediction holds).",
            1.0,
        ),
    )
}

FAN_LEVELS = {0: "off", 1: "low", 2: "medium", 3: "high"}
_LEVEL_OF_NAME = {name: level for level, name in FAN_LEVELS.items()}


def fan_level(value: object) -> int:
    """A fan level from 0..3 (a whole number, also as a float) or its name in any case;
    ValueError saying what is accepted (booleans, fractions, huge or non-finite numbers too).
    The one rule for the twin, the controller and the API.

    >>> fan_level("High"), fan_level(2), fan_level(1.0)
    (3, 2, 1)
    >>> fan_level(True)
    Traceback (most recent call last):
    ...
    ValueError: fan level must be 0..3 or one of ['off', 'low', 'medium', 'high'], got True
    """
    if isinstance(value, str) and value.lower() in _LEVEL_OF_NAME:
        return _LEVEL_OF_NAME[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in FAN_LEVELS:
        return value
    if isinstance(value, float) and value in FAN_LEVELS:  # 2.0; NaN and inf are not
        return int(value)
    if type(value).__module__ == "numpy" and not isinstance(value, bool):
        return fan_level(value.item())  # type: ignore[attr-defined]
    raise ValueError(f"fan level must be 0..3 or one of {list(_LEVEL_OF_NAME)}, got {value!r}")
