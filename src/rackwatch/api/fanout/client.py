"""One WebSocket connection as the fan-out sees it: its bounded outgoing queue, its token, and
what it has written that the peer has not acknowledged yet.

"Taken" means taken off this server, not merely handed to the OS: a write completes as soon
as the kernel buffers it (megabytes per socket), so a client that stops reading would go on
"taking" messages for minutes. Where the connection can say how many of the bytes written to
it the peer has not acknowledged yet (`Backlog`: the transport's buffer plus the kernel's
send queue, see `ws.py`), the sender notes each message's end and the time it was written,
and `Hub.pump` drops the client once a message is still unacknowledged after the send
timeout. A client that stops reading is thus dropped about one send timeout after its receive
window fills (a few tens of kilobytes), and the bytes a stuck socket pins are bounded.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rackwatch.bus.queue import DropOldestQueue

if TYPE_CHECKING:
    from rackwatch.api.fanout.groups import Group

SendText = Callable[[str], Awaitable[None]]
Backlog = Callable[[], int]
"""Bytes written to the connection that the peer has not acknowledged yet."""

BACKLOG_SLACK_BYTES = 1024
"""Unacknowledged bytes tolerated beyond what the sender counted: the frames the server itself
writes on the connection (pings, pongs) are not counted."""


class ClientTooSlow(Exception):
    """A client did not take a message within the send timeout."""


class ClientClosed(Exception):
    """The server closes this client (`Hub.close_client`): a WebSocket close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server ({code}, {reason})")
        self.code = code
        self.reason = reason


class Client:
    """One connection: its outgoing queue (bounded, drop oldest), its subscription group, the
    token it was opened with (None: an open loopback read) and, where the connection can tell,
    the messages written to it that the peer has not acknowledged yet."""

    def __init__(
        self,
        send: SendText,
        queue_size: int,
        *,
        backlog: Backlog | None = None,
        token_id: str | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.send = send
        self.backlog = backlog
        self.token_id = token_id
        self.group: Group | None = None
        self.closing: tuple[int, str] | None = None
        """(close code, reason) once the server closes this client; nothing more is queued."""
        self._queue: DropOldestQueue[str] = DropOldestQueue(queue_size)
        self._written_bytes = 0
        self._unacked: deque[tuple[int, float]] = deque()
        """(end offset in the bytes written, time written) of each unacknowledged message."""

    @property
    def n_dropped(self) -> int:
        return self._queue.dropped

    def put(self, text: str) -> bool:
        """Queue a text; True when the oldest queued one had to be dropped to make room."""
        if self.closing is not None:
            return False
        return self._queue.put(text)

    def close(self, code: int, reason: str, last: str) -> None:
        """Send `last` (instead of whatever is queued), then close with `code`."""
        self._queue.clear()
        self._queue.put(last)
        self.closing = (code, reason)

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def next(self, timeout_s: float | None = None) -> str | None:
        """The next queued text; None when there is none within `timeout_s` (None: wait)."""
        return await self._queue.get(timeout_s)

    def written(self, text: str, now: float) -> None:
        """Note a text handed to the connection (with its frame header) at `now`."""
        if self.backlog is None:
            return
        self._written_bytes += frame_bytes(text)
        self._unacked.append((self._written_bytes, now))

    def oldest_unacked(self) -> float | None:
        """When the oldest message the peer has not acknowledged was written (None: none).

        One `backlog()` call (a syscall) per message written, plus one per check while
        something is unacknowledged."""
        if not self._unacked or self.backlog is None:
            return None
        acked = self._written_bytes - self.backlog() + BACKLOG_SLACK_BYTES
        while self._unacked and self._unacked[0][0] <= acked:
            self._unacked.popleft()
        return self._unacked[0][1] if self._unacked else None


def frame_bytes(text: str) -> int:
    """Bytes of a server-to-client text frame (unmasked) carrying `text`.

    >>> frame_bytes("x" * 125), frame_bytes("x" * 126), frame_bytes("é" * 40_000)
    (127, 130, 80010)
    """
    n = len(text) if text.isascii() else len(text.encode())
    return n + (2 if n < 126 else 4 if n < 65_536 else 10)
