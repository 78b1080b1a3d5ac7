"""NumPy columns to and from PostgreSQL without a Python call per row.

In: a binary COPY stream is a 19-byte header, then per row a 16-bit field count and per field
a 32-bit length (-1: NULL, no value) and the value in network byte order, then a 16-bit -1.
Rows of fixed-width columns are one NumPy structured array; a NaN sent as NULL drops its 8
bytes. Encoding a sample is a few vectorised copies, where psycopg's `write_row` costs about a
microsecond a row.

Out: `COPY TO` hands rows to Python one message at a time (a microsecond or more each), so
`read` asks instead for each row's fields in binary (`int8send`...) concatenated server-side
into a few large `bytea` values (`string_agg`), which NumPy reads as one structured array.

>>> cols = {"series": np.array([1, 2], np.int32), "value": np.array([0.5, np.nan])}
>>> len(encode(cols)) == 19 + 2 * (2 + 8 + 4 + 8) + 2
True
>>> len(encode(cols, nullable=("value",))) == 19 + 2 * (2 + 8 + 4 + 8) - 8 + 2
True
>>> out = decode(encode(cols), {"series": "i4", "value": "f8"})
>>> out["series"].tolist(), out["value"].tolist()
([1, 2], [0.5, nan])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from rackwatch.errors import StoreError

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

Array = npt.NDArray[Any]


def _row_dtype(kinds: Mapping[str, str]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for name, kind in kinds.items():
        fields += [(f"_len_{name}", ">i4"), (name, f">{kind}")]
    return np.dtype(fields)


def encode(columns: Mapping[str, Array], nullable: Sequence[str] = ()) -> bytes:
    """One binary COPY stream of the columns (all of one length; int32, int64 or float64);
    NaN in a float column named in `nullable` is sent as NULL."""
    kinds = {name: np.asarray(col).dtype.str[1:] for name, col in columns.items()}
    dtype = _row_dtype(kinds)
    n = len(next(iter(columns.values()))) if columns else 0
    rows = np.empty(n, dtype)
    rows["_n"] = len(columns)
    for name, col in columns.items():
        rows[f"_len_{name}"] = np.asarray(col).dtype.itemsize
        rows[name] = col
    keep: npt.NDArray[np.bool_] | None = None
    for name in nullable:
        null = np.flatnonzero(np.isnan(columns[name]))
        if len(null):
            rows[f"_len_{name}"][null] = -1
            if keep is None:
                keep = np.ones((n, dtype.itemsize), bool)
            at = dtype.fields[name][1]  # type: ignore[index]
            keep[null, at : at + 8] = False
    if keep is None:
        return HEADER + rows.tobytes() + TRAILER
    return HEADER + rows.view(np.uint8).reshape(n, dtype.itemsize)[keep].tobytes() + TRAILER


def decode(data: bytes, kinds: Mapping[str, str]) -> dict[str, Array]:
    """Columns (native byte order) of a binary COPY stream of NOT NULL fixed-width fields;
    `kinds` names them in order with NumPy codes (i4, i8, f8)."""
    dtype = _row_dtype(kinds)
    if not data:
        return {name: np.empty(0, np.dtype(kind)) for name, kind in kinds.items()}
    if not data.startswith(HEADER[:11]) or not data.endswith(TRAILER):
        raise StoreError("PostgreSQL sent a COPY stream this rackwatch cannot read")
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext : len(data) - 2]
    if len(body) % dtype.itemsize:
        raise StoreError("PostgreSQL sent a row with a NULL or an unexpected width")
    rows = np.frombuffer(body, dtype)
    return {name: rows[name].astype(np.dtype(kind)) for name, kind in kinds.items()}


_SEND = {"i4": "int4send", "i8": "int8send", "f8": "float8send"}
GROUP_SERIES = 256
"""Series per `bytea` value `read` fetches: each stays far below PostgreSQL's 1 GB limit (256
series x 7 days of 5 s samples x 20 bytes = 620 MB at most)."""


def read(
    con: psycopg.Connection[Any], columns: Mapping[str, tuple[str, str]], rest: str
) -> dict[str, Array]:
    """Columns of `SELECT <exprs> <rest>`: `columns` maps a name to its SQL expression (never
    NULL: coalesce) and NumPy code (i4, i8, f8); `rest` is `FROM ... WHERE ...` and has a
    `series` column to group on. Rows come in no particular order."""
    fields = " || ".join(f"{_SEND[kind]}({expr})" for expr, kind in columns.values())
    sql = f"SELECT string_agg({fields}, ''::bytea) {rest} GROUP BY series / {GROUP_SERIES}"
    with con.cursor(binary=True) as cur:
        blobs = [bytes(row[0]) for row in cur.execute(sql).fetchall()]
    dtype = np.dtype([(name, f">{kind}") for name, (_, kind) in columns.items()])
    rows = np.frombuffer(b"".join(blobs), dtype)
    return {name: rows[name].astype(np.dtype(kind)) for name, (_, kind) in columns.items()}
