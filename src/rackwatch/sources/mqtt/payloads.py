"""Payload schemas of the MQTT topic scheme (docs/MQTT.md): bounded, validated, one-line errors.

Every payload is JSON except availability (`online` / `offline`). A payload over
`MAX_PAYLOAD_BYTES`, not JSON, or outside the schema raises `PayloadError` with a short
reason; the caller counts it and goes on (one bad device never blocks the others).

>>> t = decode(Telemetry, b'{"ts": 1767225600000, "values": {"cpu_temperature_celsius": 61.5},'
...            b' "components": {"fan1": {"fan_level": 2}}}')
>>> t.values, t.components
({'cpu_temperature_celsius': 61.5}, {'fan1': {'fan_level': 2.0}})
>>> decode(Telemetry, b'{"values": {"power_watts": "hot"}}')
Traceback (most recent call last):
...
rackwatch.sources.mqtt.payloads.PayloadError: values.power_watts: Input should be a valid number
>>> decode(DeviceState, b'{"fans": {"fan1": 7}}')
Traceback (most recent call last):
...
rackwatch.sources.mqtt.payloads.PayloadError: fans.fan1: Input should be less than or equal to 3
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

MAX_PAYLOAD_BYTES = 16 * 1024
"""Larger payloads are refused before parsing (a telemetry message is about 1 KiB)."""
MAX_VALUES = 256
MAX_COMPONENTS = 32
MAX_ABS_VALUE = 1e15
"""Readings beyond this magnitude are refused (bytes counters of a large disk fit)."""
MIN_TS_MS = 946_684_800_000  # 2000-01-01
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01
MAX_LEVEL = 3

MetricName = Annotated[
    str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=128)
]
ComponentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:-]+$", max_length=64)]
EntityPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$", max_length=256)
]
ShortText = Annotated[str, StringConstraints(max_length=128)]
Reading = Annotated[
    float, Field(strict=True, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)
]
"""A number; JSON `null` (None) is a sensor that answered nothing (a NaN row)."""
Level = Annotated[int, Field(strict=True, ge=0, le=MAX_LEVEL)]
TimestampMs = Annotated[int, Field(strict=True, ge=MIN_TS_MS, le=MAX_TS_MS)]
Attribute = (
    Annotated[str, StringConstraints(max_length=256)]
    | bool
    | Annotated[int, Field(strict=True, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
    | Reading
    | None
)

DeviceKind = Literal["server", "sensor", "fan", "pdu", "crac", "rack", "cluster", "room"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Telemetry(_Payload):
    """`<device>/telemetry`: readings of the device and of its components at `ts` (ms UTC;
    absent: the instant it is received)."""

    ts: TimestampMs | None = None
    values: dict[MetricName, Reading | None] = Field(default_factory=dict, max_length=MAX_VALUES)
    components: dict[ComponentName, dict[MetricName, Reading | None]] = Field(
        default_factory=dict, max_length=MAX_COMPONENTS
    )


class Capabilities(_Payload):
    """`<device>/capabilities` (retained): what the device is, for the inventory."""

    kind: DeviceKind
    name: ShortText | None = None
    metrics: list[MetricName] = Field(default_factory=list, max_length=MAX_VALUES)
    fans: list[ComponentName] = Field(default_factory=list, max_length=MAX_COMPONENTS)
    """Fans it drives (`cmd/<fan>/level`); each is the entity `<device path>/<fan>`."""
    rack: EntityPath | None = None
    slot: Annotated[int, Field(strict=True, ge=0, le=1000)] | None = None
    attributes: dict[MetricName, Attribute] = Field(default_factory=dict, max_length=32)


class DeviceState(_Payload):
    """`<device>/state` (retained): what the device does now; each fan's level 0..3."""

    ts: TimestampMs | None = None
    fans: dict[ComponentName, Level] = Field(default_factory=dict, max_length=MAX_COMPONENTS)


class LevelCommand(_Payload):
    """`<device>/cmd/<fan>/level` (QoS 1): set the fan to `level`."""

    level: Level
    id: ShortText = ""
    issued_by: ShortText = "unknown"
    reason: ShortText | None = None


class PayloadError(ValueError):
    """A payload refused: too large, not JSON, or outside its schema (one line)."""


Model = TypeVar("Model", bound=_Payload)


def decode(model: type[Model], payload: bytes | bytearray | str) -> Model:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = first["msg"][:200]
        raise PayloadError(f"{where}: {message}{more}" if where else message) from None


def decode_availability(payload: bytes | bytearray | str) -> bool:
    """`online` -> True, `offline` -> False; PayloadError otherwise."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes | bytearray) else payload
    if text == "online":
        return True
    if text == "offline":
        return False
    raise PayloadError(f"availability must be 'online' or 'offline', got {text[:32]!r}")


def encode(payload: _Payload) -> bytes:
    return payload.model_dump_json(exclude_none=True).encode()
