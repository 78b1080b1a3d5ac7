"""Whether a machine may be recommended at all, and if not, why in words.

Never recommended: a machine that is offline or stale (nothing received for its timeout: the
alert engine's word when it runs, else its newest sample against `now_ms`), in maintenance, or
FAILED (a failure alert on the machine itself: a dead fan, a failed disk). A WARNING or
CRITICAL machine may still be recommended: its alerts are its operators' business, and its
load decides its like index.

>>> exclusion("ok", True, age_ms=1_000, stale_after_ms=60_000) is None
True
>>> exclusion(None, None, age_ms=90_000, stale_after_ms=60_000)
'offline: nothing received for 90 s (the timeout is 60 s)'
>>> exclusion("maintenance", True, age_ms=0, stale_after_ms=60_000)
'in maintenance'
>>> exclusion(None, None, age_ms=None, stale_after_ms=60_000)
'offline: no value received yet'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rackwatch.engine.states import DeviceState


def exclusion(
    state: str | None,
    is_reporting: bool | None,
    *,
    age_ms: int | None,
    stale_after_ms: int,
    reason: str = "",
) -> str | None:
    """Why the machine is excluded, or None when it may be recommended. `state` and
    `is_reporting` are the alert engine's (None: it does not know the machine, or does not
    run); then `age_ms` (now less its newest sample; None: it never sent one) decides, against
    `stale_after_ms`. `reason`: the state's reason, quoted for a FAILED machine."""
    if state == DeviceState.MAINTENANCE:
        return "in maintenance"
    if age_ms is None:
        return "offline: no value received yet"
    silent = f"offline: nothing received for {age_ms / 1000:.0f} s"
    if is_reporting is False or state == DeviceState.UNKNOWN:
        return silent
    if is_reporting is None and state is None and age_ms > stale_after_ms:
        return f"{silent} (the timeout is {stale_after_ms / 1000:.0f} s)"
    if state == DeviceState.FAILED:
        return f"failed: {reason}" if reason else "failed (see its alerts)"
    return None


StateOf = Callable[[str], tuple[str | None, bool | None, str]]
"""`state_of(machine) -> (state, is_reporting, reason)`, from the alert engine."""


def exclusions(
    machines: Sequence[str],
    last_seen_ms: Sequence[int],
    *,
    now_ms: Callable[[str], int],
    stale_after_ms: Callable[[str], int],
    state_of: StateOf | None = None,
) -> list[str | None]:
    """`exclusion` of each machine; `now_ms` and `stale_after_ms` per machine, since each
    source has its own clock (the twin's simulated time, the real machines' wall clock).
    `last_seen_ms` < 0: never sent a value."""
    out: list[str | None] = []
    for machine, seen in zip(machines, last_seen_ms, strict=True):
        state, reporting, reason = (None, None, "") if state_of is None else state_of(machine)
        age = None if seen < 0 else max(0, now_ms(machine) - seen)
        out.append(
            exclusion(
                state, reporting, age_ms=age, stale_after_ms=stale_after_ms(machine), reason=reason
            )
        )
    return out
