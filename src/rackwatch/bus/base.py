"""The Bus protocol: the only way parts talk. Messages are records (Batch, Event, Command)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Subscription(Protocol):
    """An async iterator of `(subject, message)`; `dropped` counts messages lost to overflow,
    `pending` those queued and not yet read."""

    @property
    def dropped(self) -> int: ...

    @property
    def pending(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]: ...


class Bus(Protocol):
    async def publish(self, subject: str, message: Any) -> None: ...

    def subscribe(
        self, pattern: str, *, max_pending: int = ...
    ) -> AbstractAsyncContextManager[Subscription]: ...
