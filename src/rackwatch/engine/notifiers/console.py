"""Coloured lines on the terminal (Rich): yellow WARNING, red CRITICAL, green resolved."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from rackwatch.engine.notifiers.base import Notification
from rackwatch.model import Severity

_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "bold yellow", Severity.CRITICAL: "bold red"}


class ConsoleNotifier:
    """Writes one line per notification; `console` defaults to Rich's stderr console."""

    def __init__(self, console: Console | None = None, *, name: str = "console") -> None:
        self.name = name
        self.console = console if console is not None else Console(stderr=True)

    async def send(self, notification: Notification) -> None:
        n = notification
        if n.is_resolved:
            tag, style = "RESOLVED", "bold green"
        else:
            tag, style = n.level.name, _STYLE[n.level]
        self.console.print(
            f"[dim]{n.timestamp}[/] [{style}]{tag:<8}[/] {escape(n.message)} "
            f"[dim]({escape(n.rule)}, {n.alert_id})[/]",
            highlight=False,
            soft_wrap=True,
        )

    async def close(self) -> None:
        return None
