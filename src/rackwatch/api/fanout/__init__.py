"""WebSocket fan-out: one hub, one bounded queue and one sender task per client.

- `hub`: the clients and their groups; fans each batch of the live state table out.
- `groups`: a subscription's `Filter` and the `Group` of clients sharing it (series mask,
  rate limit).
- `client`: one connection's drop-oldest queue and unacknowledged bytes.
- `alert_feed`: the alert occurrences each group has not been sent yet.
- `message`: the `monitoring_data` text.
"""

from rackwatch.api.fanout.alert_feed import AlertFeed, RecentAlerts
from rackwatch.api.fanout.client import Backlog, Client, ClientClosed, ClientTooSlow, frame_bytes
from rackwatch.api.fanout.groups import Filter, Group, Ids
from rackwatch.api.fanout.hub import Hub

__all__ = [
    "AlertFeed",
    "Backlog",
    "Client",
    "ClientClosed",
    "ClientTooSlow",
    "Filter",
    "Group",
    "Hub",
    "Ids",
    "RecentAlerts",
    "frame_bytes",
]
