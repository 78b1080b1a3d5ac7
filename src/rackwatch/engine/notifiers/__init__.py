"""Notifiers: where alerts go (console, rotating file, email, webhook, Slack), each behind a
filter, each on its own lane so that one failing never blocks another.

Importing this package does not import httpx: `WebhookNotifier` and `SlackNotifier` are in
their modules (`rackwatch.engine.notifiers.webhook`, `.slack`).
"""

from rackwatch.engine.notifiers.base import Notification, NotificationFailed, Notifier
from rackwatch.engine.notifiers.dispatch import Dispatcher, NotifierRoute, NotifierStats
from rackwatch.engine.notifiers.filters import NotificationFilter, TimeWindow
from rackwatch.engine.notifiers.spool import SPOOL_FILE, NotificationSpool

__all__ = [
    "SPOOL_FILE",
    "Dispatcher",
    "Notification",
    "NotificationFailed",
    "NotificationFilter",
    "NotificationSpool",
    "Notifier",
    "NotifierRoute",
    "NotifierStats",
    "TimeWindow",
]
