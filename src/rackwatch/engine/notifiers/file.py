"""One JSON object per line in a file that rotates by size (stdlib RotatingFileHandler).

Seed 001's FileAlertHandler: rotation at 10 MB by default, a few old files kept
(`alerts.log.1`, `alerts.log.2`...). Writes happen in a worker thread, never in the loop.
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(
                self.path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            raise NotificationFailed(_cannot_write(self.path, exc)) from exc

    async def send(self, notification: Notification) -> None:
        line = json.dumps(notification.as_dict(), ensure_ascii=False, allow_nan=False)
        await asyncio.to_thread(self._write, line)

    def _write(self, line: str) -> None:
        try:
            record = logging.makeLogRecord({"msg": line, "levelno": logging.INFO})
            if self._handler.shouldRollover(record):
                self._handler.doRollover()
            stream = self._handler.stream
            if stream is None:
                raise ValueError("the alert file was closed")
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the file was closed
            raise NotificationFailed(_cannot_write(self.path, exc)) from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._handler.close)


def _cannot_write(path: Path, exc: Exception) -> str:
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write alerts to {path}: {detail}; check that the directory is writable"
