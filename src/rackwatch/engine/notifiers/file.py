"""One JSON object per line in a file that rotates by size (stdlib RotatingFileHandler).

Rotation at 10 MB by default, a few old files kept (`alerts.log.1`, `alerts.log.2`...).
Writes happen in a worker thread, never in the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
from pathlib import Path

from rackwatch.engine.notifiers.base import Notification, NotificationFailed


class FileNotifier:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backup_count: int = 5,
        name: str = "file",
    ) -> None:
        if max_bytes < 1 or backup_count < 0:
            raise ValueError("max_bytes must be >= 1 and backup_count >= 0")
        self.name = name
        self.path = Path(path)
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = _RaisingRotatingFileHandler(
                self.path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            raise NotificationFailed(_cannot_write(self.path, exc)) from exc

    async def send(self, notification: Notification) -> None:
        line = json.dumps(notification.as_dict(), ensure_ascii=False, allow_nan=False)
        await asyncio.to_thread(self._write, line)

    def _write(self, line: str) -> None:
        if self._closed:
            raise NotificationFailed(f"the alert file {self.path} was closed")
        record = logging.makeLogRecord({"msg": line, "levelno": logging.INFO})
        try:
            self._handler.handle(record)  # rotates when due, writes, flushes
        except OSError as exc:
            raise NotificationFailed(_cannot_write(self.path, exc)) from exc

    async def close(self) -> None:
        self._closed = True  # the handler itself would reopen the file on the next write
        await asyncio.to_thread(self._handler.close)


class _RaisingRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose errors reach the caller (the base class prints them to
    stderr and goes on), so that a failed write counts as a failed notification."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: ARG002 (its signature)
        raise  # the error being handled: emit() calls this inside its `except`


def _cannot_write(path: Path, exc: Exception) -> str:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write alerts to {path}: {detail}; check that the directory is writable"
