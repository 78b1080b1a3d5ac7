"""Console (coloured with Rich) and rotating file notifiers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from notifier_support import make_notification
from rich.console import Console

from rackwatch.engine.notifiers import NotificationFailed
from rackwatch.engine.notifiers.console import ConsoleNotifier
from rackwatch.engine.notifiers.file import FileNotifier
from rackwatch.model import Severity


def test_console_colours_by_level() -> None:
    console = Console(record=True, force_terminal=True, color_system="standard", width=300)
    notifier = ConsoleNotifier(console)

    async def scenario() -> None:
        await notifier.send(make_notification())
        await notifier.send(make_notification(level=Severity.WARNING, entity="c01/r01/s03"))
        await notifier.send(make_notification(kind="alert.resolved"))
        await notifier.close()

    asyncio.run(scenario())
    styled = console.export_text(styles=True, clear=False).splitlines()
    assert "\x1b[1;31mCRITICAL" in styled[0] and "c01/r01/s03/fan1:" in styled[0]
    assert "\x1b[1;33mWARNING" in styled[1]
    assert "\x1b[1;32mRESOLVED" in styled[2]
    plain = console.export_text()
    assert "2026-01-01T00:30:10.000Z" in plain and "fan-stopped" in plain


def test_file_writes_json_lines_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "alerts.log"
    notifier = FileNotifier(path, max_bytes=1500, backup_count=2)

    async def scenario() -> None:
        for i in range(12):
            await notifier.send(make_notification(alert_id=f"a{i:02d}"))
        await notifier.close()

    asyncio.run(scenario())
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["alerts.log", "alerts.log.1", "alerts.log.2"]  # older ones dropped
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records[-1]["alert_id"] == "a11" and records[-1]["level"] == "CRITICAL"
    assert all(len(p.read_bytes()) <= 1500 for p in path.parent.iterdir())


def test_file_that_cannot_be_opened_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(NotificationFailed, match="cannot write alerts to"):
        FileNotifier(blocker / "alerts.log")


def test_a_write_that_fails_is_a_failed_notification_not_a_message_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alerts.log"
    notifier = FileNotifier(path, max_bytes=10, backup_count=1)
    (tmp_path / "alerts.log.1").mkdir()  # the rotation cannot move the file there
    path.write_text("x" * 100)

    async def scenario() -> None:
        try:
            with pytest.raises(NotificationFailed, match="cannot write alerts to"):
                await notifier.send(make_notification())
        finally:
            await notifier.close()
        with pytest.raises(NotificationFailed, match="closed"):
            await notifier.send(make_notification())

    asyncio.run(scenario())
    assert "Traceback" not in capsys.readouterr().err
