"""Seed 002's load shape for Locust: every hour, 10 users rising to 1,000 and back to 10.

Seed 002 drove its application "a cada uma hora ... de 10 a 1000 usuários e de 1000 a 10
usuários, formando uma curva que se repete": a triangle, up for half an hour and down for the
other half, repeated. Add this file to any locustfile's list; its users are spread over the
locustfiles' User classes by their `weight`:

    locust -f bench/locust/consumers.py,bench/locust/shapes.py --headless --host URL

Environment (read once, at import):

- `RACKWATCH_LOCUST_HOUR_SECONDS` (3600): how long one "hour" lasts; 60 replays the hour in a
  minute, so the whole curve runs in a short test.
- `RACKWATCH_LOCUST_MIN_USERS` (10), `RACKWATCH_LOCUST_MAX_USERS` (1000): the curve's ends.
- `RACKWATCH_LOCUST_CYCLES` (1): hours to run before the test stops; 0 repeats until Ctrl-C
  (or `--run-time`, which the shape honours).

A value that is not a finite number in its range stops Locust at import with a message naming
the variable.
"""

from __future__ import annotations

import math
import os

from locust import LoadTestShape

TICK_S = 1.0
"""Locust asks the shape for a target about once a second."""


def _env(name: str, default: float, low: float, high: float) -> float:
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise SystemExit(f"{name}={text!r}: use a number from {low:g} to {high:g}")
    return value


def users_at(t_s: float, hour_s: float, low: int, high: int) -> int:
    """Users wanted `t_s` seconds into the test: a triangle from `low` up to `high` at
    half an hour and back down to `low` at the hour, repeated.

    >>> [users_at(t, 60, 10, 1000) for t in (0, 15, 30, 45, 60, 75)]
    [10, 505, 1000, 505, 10, 505]
    """
    phase = (t_s % hour_s) / hour_s  # 0 .. 1 within the hour
    rise = 1.0 - abs(2.0 * phase - 1.0)  # 0 at the ends, 1 at half an hour
    return round(low + (high - low) * rise)


class HourlyTenToThousand(LoadTestShape):
    """Seed 002's hourly curve, 10 → 1,000 → 10 users (see the module docstring)."""

    use_common_options = True  # so that `--run-time` can end a test before its cycles do

    hour_s = _env("RACKWATCH_LOCUST_HOUR_SECONDS", 3600.0, 10.0, 7 * 86400.0)
    low = int(_env("RACKWATCH_LOCUST_MIN_USERS", 10, 0, 100_000))
    high = int(_env("RACKWATCH_LOCUST_MAX_USERS", 1000, 1, 100_000))
    cycles = int(_env("RACKWATCH_LOCUST_CYCLES", 1, 0, 10_000))

    if high < low:
        raise SystemExit(
            f"RACKWATCH_LOCUST_MAX_USERS ({high}) is below RACKWATCH_LOCUST_MIN_USERS ({low})"
        )
    # Users per second along the slope; spawning at twice that keeps the count on the curve
    # rather than a tick behind it.
    spawn_rate = max(1.0, 2.0 * (high - low) / (hour_s / 2))

    def tick(self) -> tuple[int, float] | None:
        t_s: float = self.get_run_time()  # type: ignore[no-untyped-call]  # locust: untyped
        if self.cycles and t_s >= self.cycles * self.hour_s:
            return None
        options = None if self.runner is None else self.runner.environment.parsed_options
        run_time = getattr(options, "run_time", None)
        if run_time and t_s >= run_time:
            return None
        return users_at(t_s, self.hour_s, self.low, self.high), self.spawn_rate
