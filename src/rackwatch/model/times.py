"""Times as rackwatch writes them: epoch ms (UTC) within 1970..9999, shown as ISO 8601."""

from __future__ import annotations

import datetime as dt

MAX_TS_MS = 253_402_300_800_000
"""Year 10000 in ms: timestamps rackwatch accepts lie in 0 (1970) .. this; beyond it a time is
a mistake, and ms stay exact in JSON (< 2**53)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with a `Z`, to the millisecond (any ms in 0..MAX_TS_MS).

    >>> iso(1767225600123), iso(0)
    ('2026-01-01T00:00:00.123Z', '1970-01-01T00:00:00.000Z')
    """
    when = _EPOCH + dt.timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
