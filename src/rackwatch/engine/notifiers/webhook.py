"""JSON POST to an HTTP endpoint, with retries and exponential backoff (httpx).

A connection error, a timeout, a 5xx or a 429 is retried up to `retries` times, waiting
`backoff_s`, then twice as long each time (at most `backoff_max_s`; a 429's numeric
Retry-After is honoured within that bound). Any other 4xx is not retried: the request itself
is wrong (URL, token) and the error says so. Errors name the endpoint by scheme and host only:
webhook URLs and headers often carry secrets (Slack's URL is one).

httpx logs each request, with its full URL, at INFO on the "httpx" logger: keep that logger at
WARNING where webhook URLs are secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from rackwatch.engine.notifiers.base import Notification, NotificationFailed

Payload = Callable[[Notification], dict[str, Any]]
Sleep = Callable[[float], Awaitable[None]]


def _default_payload(notification: Notification) -> dict[str, Any]:
    return notification.as_dict()


def redact(url: str) -> str:
    """Scheme and host of a URL, nothing that may be a secret.

    >>> redact("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/…'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        payload: Payload = _default_payload,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "webhook",
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook notifier {name!r}: the URL must start with http(s)://")
        if retries < 0 or backoff_s < 0 or backoff_max_s < backoff_s or timeout_s <= 0:
            raise ValueError(
                f"webhook notifier {name!r}: need retries >= 0, 0 <= backoff_s <= backoff_max_s "
                "and timeout_s > 0"
            )
        self.name = name
        self.url = url
        self.where = redact(url)
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.payload = payload
        self.n_attempts = 0
        self.n_retries = 0
        """Attempts after the first of a notification (the dispatcher reports them)."""
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def delay_s(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based).

        >>> WebhookNotifier("http://x", backoff_s=0.5).delay_s(3)
        4.0
        """
        delay = self.backoff_s * 2.0**attempt
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        return min(delay, self.backoff_max_s)

    async def send(self, notification: Notification) -> None:
        body = self.payload(notification)
        client = self._get_client()
        problem = "no attempt made"
        retry_after: str | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(self.delay_s(attempt - 1, retry_after))
                self.n_retries += 1
            retry_after = None
            self.n_attempts += 1
            try:
                response = await client.post(self.url, json=body, headers=self._headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
                continue
            if response.is_success:
                return
            status = response.status_code
            if status == 429 or status >= 500:
                problem = f"HTTP {status}"
                retry_after = response.headers.get("retry-after")
                continue
            raise NotificationFailed(
                f"webhook {self.where} refused the alert with HTTP {status}: check the URL and "
                "the headers (a token?); not retried"
            )
        raise NotificationFailed(
            f"webhook {self.where} failed {self.retries + 1} times (last: {problem}); is it up?"
        )

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout_s, transport=self._transport, follow_redirects=False
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
