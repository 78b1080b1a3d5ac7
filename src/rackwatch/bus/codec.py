"""Bus messages as bytes and back, for a bus that leaves the process (NATS, later Kafka).

Every payload opens with a 4-byte tag naming its type. A `Batch` is then its row count
(uint64, little-endian) and its three columns as raw little-endian arrays, so NaN values and
every bit of the timestamps survive; an `Event` or a `Command` is JSON of its fields.

>>> from rackwatch.model import Command
>>> decode(encode(Command("c01/r01/s01/fan1", "fan.set_level", {"level": 3})))
Command(target='c01/r01/s01/fan1', action='fan.set_level', params={'level': 3}, \
issued_by='unknown', ts=None)
"""

from __future__ import annotations

import json
import struct
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from rackwatch.model import Batch, Command, Event, Severity

BATCH = b"RWB1"
EVENT = b"RWE1"
COMMAND = b"RWC1"
_ROWS = struct.Struct("<Q")
_ROW_BYTES = 8 + 4 + 8  # ts int64, series int32, value float64
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_COLUMNS: tuple[np.dtype[Any], ...] = (np.dtype("<i8"), np.dtype("<i4"), np.dtype("<f8"))


class CodecError(ValueError):
    """A payload that is not a message this codec wrote (truncated, foreign, corrupt)."""


def encode(message: Any) -> bytes:
    if isinstance(message, Batch):
        return _encode_batch(message)
    if isinstance(message, Event):
        return EVENT + _json(
            {
                "ts": message.ts,
                "kind": str(message.kind),
                "entity": message.entity,
                "severity": int(message.severity),
                "attributes": dict(message.attributes),
                "end_ts": message.end_ts,
            }
        )
    if isinstance(message, Command):
        return COMMAND + _json(
            {
                "target": message.target,
                "action": str(message.action),
                "params": dict(message.params),
                "issued_by": message.issued_by,
                "ts": message.ts,
            }
        )
    raise TypeError(f"the bus carries Batch, Event or Command, not {type(message).__name__}")


def encode_parts(message: Any, max_bytes: int) -> list[bytes]:
    """`message` as payloads of at most `max_bytes` (a server's max payload): a Batch too
    big for one is split by rows; anything else that does not fit raises CodecError."""
    payload = encode(message)
    if len(payload) <= max_bytes:
        return [payload]
    rows = (max_bytes - len(BATCH) - _ROWS.size) // _ROW_BYTES
    if not isinstance(message, Batch) or rows < 1:
        raise CodecError(f"a {type(message).__name__} of {len(payload)} bytes > {max_bytes}")
    return [
        _encode_batch(
            Batch(
                message.ts[i : i + rows], message.series[i : i + rows], message.value[i : i + rows]
            )
        )
        for i in range(0, len(message), rows)
    ]


def decode(payload: bytes) -> Batch | Event | Command:
    """The message in `payload`; CodecError when it is not one."""
    tag, body = payload[:4], payload[4:]
    try:
        if tag == BATCH:
            return _decode_batch(body)
        if tag == EVENT:
            e = _object(json.loads(body))
            return Event(
                ts=_ts(e["ts"]),
                kind=_of(e["kind"], str),
                entity=_of(e["entity"], str),
                severity=Severity(e["severity"]),
                attributes=_object(e["attributes"]),
                end_ts=None if e["end_ts"] is None else _ts(e["end_ts"]),
            )
        if tag == COMMAND:
            c = _object(json.loads(body))
            return Command(
                target=_of(c["target"], str),
                action=_of(c["action"], str),
                params=_object(c["params"]),
                issued_by=_of(c["issued_by"], str),
                ts=None if c["ts"] is None else _ts(c["ts"]),
            )
    except CodecError:
        raise
    # Bad JSON, a missing field, a bad enum; RecursionError: JSON nested past the stack.
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CodecError(f"malformed {tag!r} payload: {exc}") from exc
    raise CodecError(f"unknown payload tag {tag!r}")


def _encode_batch(batch: Batch) -> bytes:
    columns: tuple[npt.NDArray[Any], ...] = (batch.ts, batch.series, batch.value)
    parts = [BATCH, _ROWS.pack(len(batch))]
    for column, dtype in zip(columns, _COLUMNS, strict=True):
        parts.append(column.astype(dtype, copy=False).tobytes())
    return b"".join(parts)


def _decode_batch(body: bytes) -> Batch:
    if len(body) < _ROWS.size:
        raise CodecError("truncated Batch header")
    (rows,) = _ROWS.unpack_from(body)
    if len(body) != _ROWS.size + rows * _ROW_BYTES:
        raise CodecError(f"a Batch of {rows} rows cannot be {len(body)} bytes")
    offset, columns = _ROWS.size, []
    for dtype in _COLUMNS:
        # A copy: frombuffer's arrays are read-only views of the payload.
        columns.append(np.frombuffer(body, dtype, rows, offset).astype(dtype.newbyteorder("=")))
        offset += rows * dtype.itemsize
    return Batch.of(*columns)


T = TypeVar("T")


def _of(value: Any, kind: type[T]) -> T:
    # bool is an int to Python, never a timestamp here.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CodecError(f"{value!r} is not a {kind.__name__}")
    return value


def _ts(value: Any) -> int:
    """A timestamp (epoch ms) that fits the int64 columns it ends up in."""
    ts = _of(value, int)
    if not _INT64_MIN <= ts <= _INT64_MAX:
        raise CodecError(f"timestamp {ts} is out of the int64 range")
    return ts


def _object(value: Any) -> dict[str, Any]:
    return _of(value, dict)


def _json(fields: dict[str, Any]) -> bytes:
    # Plain json keeps NaN in attributes (as the non-standard NaN token, which it reads back).
    return json.dumps(fields, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays that sources put in attributes, as plain Python."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable on the bus")
