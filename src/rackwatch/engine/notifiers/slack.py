"""Slack incoming webhooks: a coloured attachment with an emoji per level.

The webhook URL is a secret (anyone holding it can post): it is never logged nor shown in
errors. Retries and backoff are the webhook notifier's.
"""

from __future__ import annotations

from typing import Any

from rackwatch.engine.notifiers.base import Notification
from rackwatch.engine.notifiers.webhook import WebhookNotifier
from rackwatch.model import Severity

_EMOJI = {Severity.INFO: ":information_source:", Severity.WARNING: ":warning:"}
_EMOJI[Severity.CRITICAL] = ":rotating_light:"
_COLOR = {Severity.INFO: "#439fe0", Severity.WARNING: "#daa038", Severity.CRITICAL: "#d00000"}
_RESOLVED = (":white_check_mark:", "#2eb886")


def slack_payload(
    notification: Notification,
    *,
    channel: str | None = None,
    username: str | None = None,
    icon_emoji: str | None = None,
) -> dict[str, Any]:
    """The incoming-webhook JSON: `text` (also the fallback) and one attachment."""
    n = notification
    emoji, color = _RESOLVED if n.is_resolved else (_EMOJI[n.level], _COLOR[n.level])
    state = "RESOLVED" if n.is_resolved else n.level.name
    text = f"{emoji} *{state}* `{n.entity}` {n.message}"
    payload: dict[str, Any] = {
        "text": text,
        "attachments": [
            {
                "fallback": f"{state} {n.entity}: {n.message}",
                "color": color,
                "title": f"{n.rule} on {n.entity}",
                "text": n.message,
                "fields": [
                    {"title": "Level", "value": n.level.name, "short": True},
                    {"title": "Metric", "value": n.metric, "short": True},
                    {"title": "Value", "value": f"{n.value:.4g} {n.unit}".rstrip(), "short": True},
                    {
                        "title": "Threshold",
                        "value": f"{n.threshold:.4g} {n.unit}".rstrip(),
                        "short": True,
                    },
                ],
                "footer": f"rackwatch · alert {n.alert_id}",
                "ts": n.ts_ms // 1000,
            }
        ],
    }
    for key, value in (("channel", channel), ("username", username), ("icon_emoji", icon_emoji)):
        if value is not None:
            payload[key] = value
    return payload


class SlackNotifier(WebhookNotifier):
    """A WebhookNotifier that speaks Slack's incoming-webhook format."""

    def __init__(
        self,
        url: str,
        *,
        channel: str | None = None,
        username: str | None = "rackwatch",
        icon_emoji: str | None = None,
        name: str = "slack",
        **webhook: Any,
    ) -> None:
        def payload(notification: Notification) -> dict[str, Any]:
            return slack_payload(
                notification, channel=channel, username=username, icon_emoji=icon_emoji
            )

        super().__init__(url, payload=payload, name=name, **webhook)
