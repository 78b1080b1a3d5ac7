"""The bus: the only way parts talk (in-process by default)."""

from rackwatch.bus.base import Bus, Subscription
from rackwatch.bus.memory import MemoryBus

__all__ = ["Bus", "MemoryBus", "Subscription"]
