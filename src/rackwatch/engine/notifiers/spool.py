"""Notifications kept on disk across a stop: a bounded JSON-lines file, private to its user.

At stop, what a notifier could not deliver within the deadline is appended here (one object per
line: `{"notifier": name, "notification": {...}}`); at the next start the dispatcher reads it
back into each notifier's queue, oldest first, and removes the file. The file holds at most
`max_items` notifications: beyond that the oldest are dropped, and counted. It is written
whole to a temporary file (0600) and renamed over the old one, so a crash while saving leaves
the previous spool, never half a line. A line that cannot be read is skipped and counted.

Blocking file I/O: call `load` and `save` from a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rackwatch.engine.notifiers.base import Notification
from rackwatch.model import Severity

log = logging.getLogger(__name__)

SPOOL_FILE = "notifications-spool.jsonl"
"""The spool's name in the data directory."""

Spooled = tuple[str, Notification]
"""(notifier name, notification)."""


def notification_record(notification: Notification) -> dict[str, Any]:
    """The notification's fields as JSON-ready values (its level by name).

    >>> from rackwatch.engine.notifiers.spool import notification_from_record
    >>> n = Notification("alert.fired", "ab", 5, "c01", "r", "m", "u", Severity.WARNING,
    ...                  1.0, 2.0, "hot")
    >>> notification_from_record(notification_record(n)) == n
    True
    """
    n = notification
    return {
        "kind": n.kind,
        "alert_id": n.alert_id,
        "ts_ms": n.ts_ms,
        "entity": n.entity,
        "rule": n.rule,
        "metric": n.metric,
        "unit": n.unit,
        "level": n.level.name,
        "value": n.value,
        "threshold": n.threshold,
        "message": n.message,
    }


def notification_from_record(record: dict[str, Any]) -> Notification:
    """The notification `notification_record` wrote; KeyError/ValueError/TypeError if not one."""
    return Notification(
        kind=str(record["kind"]),
        alert_id=str(record["alert_id"]),
        ts_ms=int(record["ts_ms"]),
        entity=str(record["entity"]),
        rule=str(record["rule"]),
        metric=str(record["metric"]),
        unit=str(record["unit"]),
        level=Severity[str(record["level"])],
        value=float(record["value"]),
        threshold=float(record["threshold"]),
        message=str(record["message"]),
    )


@dataclass(frozen=True, slots=True)
class Loaded:
    items: list[Spooled]
    """Oldest first."""
    n_skipped: int
    """Lines that could not be read, or beyond `max_items`."""


class NotificationSpool:
    """The spool file at `path` (see the module docstring); `max_items` bounds it."""

    def __init__(self, path: Path, *, max_items: int = 10_000) -> None:
        if max_items < 1:
            raise ValueError("the notification spool needs max_items >= 1")
        self.path = Path(path)
        self.max_items = max_items

    def load(self, *, remove: bool = True) -> Loaded:
        """What the file holds, oldest first (nothing if there is no file); then remove it,
        since the notifications are in the queues now and a later stop spools them again."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Loaded([], 0)
        items: list[Spooled] = []
        bad = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                notification = notification_from_record(record["notification"])
                items.append((str(record["notifier"]), notification))
            except (ValueError, KeyError, TypeError):
                bad += 1
        if bad:
            log.warning("skipped %d unreadable lines of the notification spool %s", bad, self.path)
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        return Loaded(items[-self.max_items :], bad + max(0, len(items) - self.max_items))

    def save(self, items: list[Spooled]) -> int:
        """Append `items` to what the file holds, keep the newest `max_items`; return how many
        were dropped to stay within the bound. Raises OSError if the file cannot be written."""
        if not items:
            return 0
        kept = self.load(remove=False).items + items
        dropped = max(0, len(kept) - self.max_items)
        kept = kept[dropped:]
        lines = [
            json.dumps(
                {"notifier": name, "notification": notification_record(n)}, ensure_ascii=False
            )
            for name, n in kept
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        return dropped
