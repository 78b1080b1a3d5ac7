"""The MQTT topic scheme (docs/MQTT.md) and the device id <-> entity path rule.

Every device lives under `<prefix>/<device>/...` (prefix `rackwatch` by default):

| topic | retained | QoS | payload |
|---|---|---|---|
| `<prefix>/<device>/telemetry` | no | 0 or 1 | `Telemetry` |
| `<prefix>/<device>/state` | yes | 1 | `DeviceState` |
| `<prefix>/<device>/capabilities` | yes | 1 | `Capabilities` |
| `<prefix>/<device>/availability` | yes | 1 | `online` / `offline` (the last will) |
| `<prefix>/<device>/cmd/<fan>/level` | no | 1 | `LevelCommand` |

A device id is its entity path with `/` written `.` (`c01.r01.s01` is `c01/r01/s01`); its
segments are letters, digits, `_`, `:` and `-`, so the mapping goes both ways.

>>> entity_of("c01.r01.s01")
'c01/r01/s01'
>>> device_of("c01/r01/s01")
'c01.r01.s01'
>>> parse_topic("rackwatch", "rackwatch/c01.r01.s01/cmd/fan1/level")
TopicParts(device='c01.r01.s01', kind='cmd', fan='fan1')
>>> parse_topic("rackwatch", "rackwatch/c01.r01.s01/telemetry").kind
'telemetry'
>>> entity_of("c01/r01")
Traceback (most recent call last):
...
ValueError: bad device id 'c01/r01': dot-separated segments of letters, digits or _:-
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rackwatch.model import entity as entity_paths

DEFAULT_PREFIX = "rackwatch"
TELEMETRY, STATE, CAPABILITIES, AVAILABILITY, CMD = (
    "telemetry",
    "state",
    "capabilities",
    "availability",
    "cmd",
)
ONLINE, OFFLINE = "online", "offline"
MAX_DEVICE_ID_LENGTH = 128
MAX_DEVICE_DEPTH = 6
_DEVICE_SEGMENT = re.compile(r"^[A-Za-z0-9_:-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_:.-]+(/[A-Za-z0-9_:.-]+)*$")


def validate_prefix(prefix: str) -> str:
    """A topic prefix without wildcards, empty levels or a leading/trailing slash."""
    if not _PREFIX.match(prefix) or len(prefix) > 128:
        raise ValueError(f"bad MQTT topic prefix {prefix!r}: levels of letters, digits or _:.-")
    return prefix


def validate_device_id(device: str) -> str:
    segments = device.split(".")
    if (
        len(device) > MAX_DEVICE_ID_LENGTH
        or len(segments) > MAX_DEVICE_DEPTH
        or not all(_DEVICE_SEGMENT.match(s) for s in segments)
    ):
        raise ValueError(
            f"bad device id {device[:MAX_DEVICE_ID_LENGTH]!r}: dot-separated segments of "
            "letters, digits or _:-"
        )
    return device


def validate_component(name: str) -> str:
    """A fan or component name: one segment, as in an entity path, without dots."""
    if not _DEVICE_SEGMENT.match(name) or len(name) > 64:
        raise ValueError(f"bad component name {name[:64]!r}: letters, digits or _:-")
    return name


def entity_of(device: str) -> str:
    """The entity path of a device id (ValueError for a bad one)."""
    return entity_paths.validate(validate_device_id(device).replace(".", "/"))


def device_of(entity: str) -> str:
    """The device id of an entity path (ValueError if a segment holds a dot)."""
    return validate_device_id(entity_paths.validate(entity).replace("/", "."))


def topic(prefix: str, device: str, kind: str, fan: str | None = None) -> str:
    if kind == CMD:
        if fan is None:
            raise ValueError("a command topic names a fan")
        return f"{prefix}/{device}/{CMD}/{fan}/level"
    return f"{prefix}/{device}/{kind}"


def subscriptions(prefix: str) -> list[str]:
    """What the ingest side subscribes to (`+` is one device)."""
    # capabilities first: their retained messages come before the others' on each connection
    return [f"{prefix}/+/{kind}" for kind in (CAPABILITIES, AVAILABILITY, STATE, TELEMETRY)]


@dataclass(frozen=True, slots=True)
class TopicParts:
    device: str
    kind: str
    fan: str | None = None


def parse_topic(prefix: str, name: str) -> TopicParts | None:
    """The device and kind of a topic under `prefix`; None when it is not one of ours."""
    if not name.startswith(prefix + "/"):
        return None
    levels = name[len(prefix) + 1 :].split("/")
    if len(levels) == 2 and levels[1] in (TELEMETRY, STATE, CAPABILITIES, AVAILABILITY):
        return TopicParts(levels[0], levels[1])
    if len(levels) == 4 and levels[1] == CMD and levels[3] == "level":
        return TopicParts(levels[0], CMD, levels[2])
    return None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: `mqtt://[user[:password]@]host[:port]` (default port 1883).

    >>> BrokerAddress.parse("mqtt://127.0.0.1:1884")
    BrokerAddress(host='127.0.0.1', port=1884, username=None, password=None)
    >>> BrokerAddress.parse("http://x")
    Traceback (most recent call last):
    ...
    ValueError: bad MQTT URL 'http://x': use mqtt://host[:port]
    """

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        try:
            port = parts.port or 1883
        except ValueError:
            port = -1
        if parts.scheme != "mqtt" or not parts.hostname or not 0 < port < 65536:
            raise ValueError(f"bad MQTT URL {url!r}: use mqtt://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"bad MQTT URL {url!r}: use mqtt://host[:port], nothing after it")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, username, password)

    def __repr__(self) -> str:  # never show the password
        hidden = None if self.password is None else "***"
        return (
            f"BrokerAddress(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password={hidden!r})"
        )

    @property
    def display(self) -> str:
        return f"mqtt://{self.host}:{self.port}"
