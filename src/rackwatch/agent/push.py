"""Pushing the buffer to a rackwatch server (`POST /api/v1/ingest`), oldest first.

The pusher sends the oldest unacknowledged collections in chunks the server takes (at most
720 collections and 50,000 readings, `api/schemas.py`), and acknowledges them in the buffer
once the server answered 202. Failures never lose data and never stop the collecting:

- the server unreachable, a timeout, a 5xx: wait (1 s, doubling up to a minute) and try again;
  the buffer keeps what is collected meanwhile;
- 401/403 (the token is wrong or revoked): say what to do, and retry every minute;
- 400/413/422 (the server refuses what was sent): halve the chunk until the one collection it
  refuses is found; that one is dropped and counted (`n_rejected`), so one bad collection never
  blocks the others.

The inventory (static facts) goes in a push of its own after a start, and again whenever it
changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from rackwatch.agent.buffer import DiskBuffer

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
MAX_ENTRIES = 720
MAX_READINGS = 50_000
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


class PushRefused(Exception):
    """The server refused the agent's token: nothing will get through until it is fixed."""


@dataclass
class PushStats:
    sent: int = 0
    """Collections the server took."""
    readings: int = 0
    rejected: int = 0
    """Collections the server refused (dropped, see the log)."""
    failures: int = 0
    """Pushes that did not get through (server unreachable, timeout, 5xx, token refused)."""
    last_error: str | None = None
    online: bool = False


class Pusher:
    def __init__(
        self,
        server: str,
        token: str,
        buffer: DiskBuffer,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = server.rstrip("/") + INGEST_PATH
        self.buffer = buffer
        self.stats = PushStats()
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._chunk = MAX_ENTRIES
        self._inventory: list[dict[str, Any]] | None = None
        self._sent_inventory: list[dict[str, Any]] | None = None

    def set_inventory(self, items: list[dict[str, Any]]) -> None:
        """Send these inventory items with the next push (if they changed since sent)."""
        if items != self._sent_inventory:
            self._inventory = items

    async def push_once(self) -> bool:
        """Send the inventory if it changed, else the oldest chunk of collections; True when
        there may be more to send at once. Raises httpx.TransportError, httpx.HTTPStatusError
        (5xx) or PushRefused: wait, then try again."""
        if self._inventory is not None:
            inventory = self._inventory
            response = await self._post({"batches": [], "inventory": _wire_inventory(inventory)})
            if response.status_code != 202:
                log.error("the server refused the inventory: %s", _detail(response))
            self._sent_inventory, self._inventory = inventory, None
            return True
        pending = self.buffer.pending(self._chunk, MAX_READINGS)
        if pending is None:
            return False
        entries = pending.entries
        body = {"batches": [{"ts_ms": e["ts_ms"], "entities": e["entities"]} for e in entries]}
        response = await self._post(body)
        if response.status_code == 202:
            self.buffer.ack(pending.last_seq)
            self.stats.sent += len(entries)
            self.stats.readings += int(response.json().get("accepted", 0))
            self._chunk = MAX_ENTRIES
            return True
        if len(entries) > 1:  # narrow down to the collection the server refuses
            self._chunk = max(1, len(entries) // 2)
            return True
        self.buffer.ack(pending.last_seq)
        self.stats.rejected += 1
        log.error(
            "the server refused a collection (seq %d), dropped: %s",
            pending.last_seq,
            _detail(response),
        )
        return True

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST a body; the answer when it is 202 or a refusal of the body (400, 413, 422)."""
        response = await self._client.post(self.url, json=body, headers=self._headers)
        status = response.status_code
        if status in (401, 403):
            raise PushRefused(
                f"the server refused the agent's token ({status}: {_detail(response)}); create "
                "one on the server with `rackwatch token create --scope ingest`"
            )
        if status not in (202, 400, 413, 422):
            response.raise_for_status()  # 5xx: wait and retry
            raise httpx.HTTPStatusError(
                f"unexpected answer {status} from {self.url}",
                request=response.request,
                response=response,
            )
        return response

    async def run(self, wake: asyncio.Event) -> None:
        """Push whenever woken (a new collection) until cancelled, waiting out failures."""
        backoff = MIN_BACKOFF_S
        while True:
            try:
                while await self.push_once():
                    pass
            except PushRefused as exc:
                self._failed(str(exc), warn=True)
                await _sleep_or_wake(wake, MAX_BACKOFF_S)
                continue
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                self._failed(f"{type(exc).__name__}: {exc}", warn=self.stats.online)
                await _sleep_or_wake(wake, backoff, wake_ends=False)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            if not self.stats.online:
                log.info("pushing to %s (%d collections waiting)", self.url, self.buffer.n_pending)
            self.stats.online = True
            self.stats.last_error = None
            backoff = MIN_BACKOFF_S
            wake.clear()
            await wake.wait()

    def _failed(self, error: str, *, warn: bool) -> None:
        self.stats.failures += 1
        self.stats.last_error = error
        if warn or self.stats.failures == 1:
            log.warning("%s; collecting on into the buffer and retrying", error)
        self.stats.online = False

    async def aclose(self) -> None:
        await self._client.aclose()


async def _sleep_or_wake(wake: asyncio.Event, seconds: float, *, wake_ends: bool = True) -> None:
    """Wait `seconds`, or less when woken and `wake_ends` (a refused token may be fixed; an
    unreachable server is not retried faster because more data came)."""
    if not wake_ends:
        await asyncio.sleep(seconds)
        return
    wake.clear()
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass


def _wire_inventory(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`{"entity", "kind", <attributes>}` items as the ingest body wants them."""
    return [
        {
            "entity": item["entity"],
            "kind": item["kind"],
            "attributes": {k: v for k, v in item.items() if k not in ("entity", "kind")},
        }
        for item in items
    ]


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail if detail is not None else response.text)[:300]
