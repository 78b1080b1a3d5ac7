"""Failure isolation: each notifier on its own lane, with its own timeout and counters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from notifier_support import Recorder, make_notification

from rackwatch.engine.notifiers import (
    Dispatcher,
    Notification,
    NotificationFailed,
    NotificationFilter,
    NotifierRoute,
)
from rackwatch.engine.notifiers.webhook import WebhookNotifier
from rackwatch.model import Severity


class Collecting:
    """A notifier that keeps what it gets; `fail` makes the next sends raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[Notification] = []
        self.fail = 0
        self.closed = False

    async def send(self, notification: Notification) -> None:
        if self.fail:
            self.fail -= 1
            raise NotificationFailed("down for the test")
        self.got.append(notification)

    async def close(self) -> None:
        self.closed = True


class Hanging:
    """A notifier that never returns."""

    def __init__(self, name: str = "hanging") -> None:
        self.name = name

    async def send(self, _notification: Notification) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout_s)


def notifications(n: int) -> list[Notification]:
    return [make_notification(alert_id=f"a{i}", ts_ms=1_767_227_410_000 + i) for i in range(n)]


def test_a_hanging_webhook_does_not_delay_another(
    http_server: Recorder, hanging_server: Recorder
) -> None:
    slow = WebhookNotifier(hanging_server.url, name="slow", retries=0)
    fast = WebhookNotifier(http_server.url, name="fast")
    dispatcher = Dispatcher([NotifierRoute(slow, timeout_s=60), NotifierRoute(fast)])

    async def scenario() -> None:
        dispatcher.start()
        for n in notifications(3):
            dispatcher.dispatch(n)
        await until(lambda: len(http_server.requests) == 3)
        stats = dispatcher.stats()
        assert stats["fast"]["sent"] == 3
        assert stats["slow"] == {"sent": 0, "failed": 0, "dropped": 0, "filtered": 0}
        assert len(hanging_server.requests) == 1  # still waiting on its first answer
        await dispatcher.close(drain_timeout_s=0.05)

    asyncio.run(scenario())
    assert [b["alert_id"] for b in http_server.bodies()] == ["a0", "a1", "a2"]


def test_timeout_and_errors_count_as_failed_and_the_lane_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = Collecting("flaky")
    flaky.fail = 2
    dispatcher = Dispatcher([NotifierRoute(Hanging(), timeout_s=0.02), NotifierRoute(flaky)])

    async def scenario() -> None:
        dispatcher.start()
        for n in notifications(3):
            dispatcher.dispatch(n)
        await until(lambda: dispatcher.stats()["hanging"]["failed"] == 3)
        await until(lambda: dispatcher.stats()["flaky"]["sent"] == 1)
        await dispatcher.close()

    with caplog.at_level(logging.INFO, logger="rackwatch.engine.notifiers.dispatch"):
        asyncio.run(scenario())
    assert dispatcher.stats()["flaky"] == {"sent": 1, "failed": 2, "dropped": 0, "filtered": 0}
    assert flaky.closed and [n.alert_id for n in flaky.got] == ["a2"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("notifier flaky failed (down for the test)" in m for m in messages) == 1
    assert sum("notifier hanging failed (no answer within 0.02 s)" in m for m in messages) == 1
    assert "notifier flaky recovered" in messages


def test_filter_and_overflow_are_counted() -> None:
    picky = Collecting("picky")
    full = Collecting("full")
    dispatcher = Dispatcher(
        [
            NotifierRoute(picky, NotificationFilter(entities=("c02/**",))),
            NotifierRoute(full, max_pending=2),
        ]
    )
    for n in notifications(3):  # not started: the lanes fill up
        dispatcher.dispatch(n)
    stats = dispatcher.stats()
    assert stats["picky"]["filtered"] == 3
    assert stats["full"]["dropped"] == 1

    async def scenario() -> None:
        dispatcher.start()
        await dispatcher.idle()
        await dispatcher.close()

    asyncio.run(scenario())
    assert [n.alert_id for n in full.got] == ["a1", "a2"]  # the oldest was dropped


def test_names_must_be_unique_and_limits_positive() -> None:
    with pytest.raises(ValueError, match="unique"):
        Dispatcher([NotifierRoute(Collecting("x")), NotifierRoute(Collecting("x"))])
    with pytest.raises(ValueError, match="timeout_s"):
        NotifierRoute(Collecting("x"), timeout_s=0)
    assert NotificationFilter().min_level is Severity.WARNING
