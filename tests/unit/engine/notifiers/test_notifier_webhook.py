"""WebhookNotifier and SlackNotifier against a real local HTTP server: payloads, retries with
exponential backoff (the sleep is injected and recorded), no retry on a 4xx, secrets kept
out of errors."""

from __future__ import annotations

import asyncio

import pytest
from notifier_support import Recorder, make_notification

from rackwatch.engine.notifiers import Notification, NotificationFailed
from rackwatch.engine.notifiers.slack import SlackNotifier, slack_payload
from rackwatch.engine.notifiers.webhook import WebhookNotifier
from rackwatch.model import Severity


class Sleeps:
    """An injected sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def send_and_close(notifier: WebhookNotifier, notification: Notification) -> None:
    try:
        await notifier.send(notification)
    finally:
        await notifier.close()


def test_posts_the_alert_as_json_with_headers(
    http_server: Recorder, notification: Notification
) -> None:
    notifier = WebhookNotifier(http_server.url, headers={"Authorization": "Bearer t0ken"})
    asyncio.run(send_and_close(notifier, notification))
    [request] = http_server.requests
    assert request["path"] == "/hooks/T000/SECRET"
    assert request["headers"]["Authorization"] == "Bearer t0ken"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == notification.as_dict()
    assert request["json"]["level"] == "CRITICAL" and request["json"]["status"] == "firing"


def test_retries_with_exponential_backoff_until_the_server_answers(
    http_server: Recorder, notification: Notification
) -> None:
    http_server.fail_first = 3
    sleeps = Sleeps()
    notifier = WebhookNotifier(http_server.url, retries=3, backoff_s=0.5, sleep=sleeps)
    asyncio.run(send_and_close(notifier, notification))
    assert len(http_server.requests) == 4 and notifier.n_attempts == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert http_server.bodies()[0] == http_server.bodies()[-1]


def test_gives_up_after_the_retries_and_never_shows_the_url_path(
    http_server: Recorder, notification: Notification
) -> None:
    http_server.fail_first = 100
    sleeps = Sleeps()
    notifier = WebhookNotifier(
        http_server.url, retries=2, backoff_s=1, backoff_max_s=1.5, sleep=sleeps
    )
    with pytest.raises(NotificationFailed, match=r"failed 3 times \(last: HTTP 503\)") as failure:
        asyncio.run(send_and_close(notifier, notification))
    assert sleeps.delays == [1.0, 1.5]  # capped at backoff_max_s
    assert "SECRET" not in str(failure.value) and "127.0.0.1" in str(failure.value)


def test_a_4xx_is_not_retried(http_server: Recorder, notification: Notification) -> None:
    http_server.fail_first, http_server.fail_status = 100, 403
    sleeps = Sleeps()
    notifier = WebhookNotifier(http_server.url, sleep=sleeps)
    with pytest.raises(NotificationFailed, match=r"HTTP 403.*not retried"):
        asyncio.run(send_and_close(notifier, notification))
    assert len(http_server.requests) == 1 and sleeps.delays == []


def test_429_retry_after_is_honoured(http_server: Recorder, notification: Notification) -> None:
    http_server.fail_first, http_server.fail_status, http_server.retry_after = 1, 429, "7"
    sleeps = Sleeps()
    notifier = WebhookNotifier(http_server.url, sleep=sleeps)
    asyncio.run(send_and_close(notifier, notification))
    assert sleeps.delays == [7.0] and len(http_server.requests) == 2


def test_connection_refused_is_retried_then_reported(
    closed_port_url: str, notification: Notification
) -> None:
    sleeps = Sleeps()
    notifier = WebhookNotifier(closed_port_url, retries=1, sleep=sleeps)
    with pytest.raises(NotificationFailed, match="ConnectError"):
        asyncio.run(send_and_close(notifier, notification))
    assert sleeps.delays == [0.5]


def test_bad_webhook_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("ftp://example.com/hook")
    with pytest.raises(ValueError, match="retries"):
        WebhookNotifier("http://example.com/hook", retries=-1)


def test_slack_incoming_webhook_format(http_server: Recorder) -> None:
    notifier = SlackNotifier(http_server.url, channel="#monitoring", username="MonitoringBot")
    critical = make_notification()
    resolved = make_notification(kind="alert.resolved", value=7200.0)
    warning = make_notification(level=Severity.WARNING, entity="c01/r01/s03")

    async def scenario() -> None:
        for n in (critical, resolved, warning):
            await notifier.send(n)
        await notifier.close()

    asyncio.run(scenario())
    first, second, third = http_server.bodies()
    assert first["channel"] == "#monitoring" and first["username"] == "MonitoringBot"
    assert first["text"].startswith(":rotating_light: *CRITICAL* `c01/r01/s03/fan1`")
    attachment = first["attachments"][0]
    assert attachment["color"] == "#d00000" and attachment["ts"] == critical.ts_ms // 1000
    assert {"title": "Value", "value": "0 rpm", "short": True} in attachment["fields"]
    assert second["text"].startswith(":white_check_mark: *RESOLVED*")
    assert second["attachments"][0]["color"] == "#2eb886"
    assert third["text"].startswith(":warning: *WARNING*")
    assert "icon_emoji" not in slack_payload(critical)
