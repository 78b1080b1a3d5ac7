"""Fan commands waiting for the device's retained state to show the level they asked for.

Pure bookkeeping on an injected clock: `expect` when a command is published, `observe` each
state the device reports (the confirmed commands come back), `expired` for those whose
deadline passed. A newer command for the same fan replaces the older one (only the last
level asked for can still be confirmed); the replaced one is returned so it can be reported.

>>> from rackwatch.model import Command
>>> c = Confirmations(timeout_s=10.0)
>>> c.expect("d1", "fan1", 3, Command("d1/fan1", "fan.set_level", {"level": 3}), now=0.0)
>>> c.expect("d1", "fan1", 3, Command("d1/fan1", "fan.set_level", {"level": 3}), now=0.0).level
3
>>> c.observe("d1", {"fan1": 2}, now=1.0)
[]
>>> [(p.fan, round(latency, 1)) for p, latency in c.observe("d1", {"fan1": 3}, now=2.5)]
[('fan1', 2.5)]
>>> c.expect("d1", "fan2", 1, Command("d1/fan2", "fan.set_level", {"level": 1}), now=3.0)
>>> [p.fan for p in c.expired(now=13.5)], len(c)
(['fan2'], 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rackwatch.model.records import Command


@dataclass(frozen=True, slots=True)
class PendingCommand:
    device: str
    fan: str
    level: int
    command: Command
    sent_at: float
    deadline: float


class Confirmations:
    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError("the confirmation timeout must be positive")
        self.timeout_s = timeout_s
        self._pending: dict[tuple[str, str], PendingCommand] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(
        self, device: str, fan: str, level: int, command: Command, now: float
    ) -> PendingCommand | None:
        """Wait for `fan` of `device` to report `level`; the command it replaces, if any."""
        pending = PendingCommand(device, fan, level, command, now, now + self.timeout_s)
        replaced = self._pending.pop((device, fan), None)
        self._pending[(device, fan)] = pending
        return replaced

    def observe(
        self, device: str, levels: Mapping[str, int], now: float
    ) -> list[tuple[PendingCommand, float]]:
        """The commands this state confirms, each with its latency in seconds."""
        confirmed = []
        for fan, level in levels.items():
            pending = self._pending.get((device, fan))
            if pending is not None and pending.level == level:
                del self._pending[(device, fan)]
                confirmed.append((pending, now - pending.sent_at))
        return confirmed

    def expired(self, now: float) -> list[PendingCommand]:
        late = [p for p in self._pending.values() if p.deadline <= now]
        for p in late:
            del self._pending[(p.device, p.fan)]
        return late
