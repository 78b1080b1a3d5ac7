"""Failure isolation: each notifier on its own lane, with its own timeout and counters."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from notifier_support import Recorder, make_notification

from rackwatch.engine.notifiers import (
    SPOOL_FILE,
    Dispatcher,
    Notification,
    NotificationFailed,
    NotificationFilter,
    NotificationSpool,
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


def counts(**nonzero: int) -> dict[str, int]:
    """A lane's stats: every counter 0 but those given."""
    keys = ("sent", "failed", "dropped", "filtered", "spooled", "restored", "retries", "pending")
    return {key: nonzero.get(key, 0) for key in keys}


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
        try:
            for n in notifications(3):
                dispatcher.dispatch(n)
            # the fast lane counts a send once it has the answer, after the server saw it
            await until(lambda: dispatcher.stats()["fast"]["sent"] == 3)
            assert len(http_server.requests) == 3
            # the slow lane has taken its first and waits on the answer (on a loaded machine
            # it may take it after the fast lane has sent all three)
            await until(lambda: len(hanging_server.requests) == 1)
            assert dispatcher.stats()["slow"] == counts(pending=2)
            assert len(hanging_server.requests) == 1
        finally:
            # always: a send left hanging when the loop shuts down keeps asyncio.run waiting
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
    assert dispatcher.stats()["flaky"] == counts(sent=1, failed=2)
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


def test_what_a_failing_notifier_leaves_at_stop_is_spooled_and_sent_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Issue 8 item 7: 175 alerts queued for a dead webhook at stop used to vanish (the lane
    was cancelled at the drain deadline, its queue forgotten). Now they are kept, privately,
    and the next start sends them; the notifier that works delivers everything."""
    spool = NotificationSpool(tmp_path / SPOOL_FILE)
    down, fine = Collecting("webhook"), Collecting("file")
    down.fail = 10**6
    dispatcher = Dispatcher([NotifierRoute(down), NotifierRoute(fine)], spool=spool, drain_s=5)
    sent = notifications(175)

    async def stop() -> None:
        for n in sent:  # queued when the stop comes
            dispatcher.dispatch(n)
        dispatcher.start()
        await dispatcher.close()

    asyncio.run(stop())
    assert dispatcher.stats() == {
        "webhook": counts(failed=1, spooled=175),  # one try at stop, then the rest kept
        "file": counts(sent=175),
    }
    assert down.closed and fine.closed
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    lines = spool.path.read_text().splitlines()
    assert len(lines) == 175 and json.loads(lines[0])["notifier"] == "webhook"

    up = Collecting("webhook")
    restarted = Dispatcher([NotifierRoute(up), NotifierRoute(Collecting("file"))], spool=spool)

    async def start_again() -> None:
        await restarted.restore()
        restarted.start()
        await restarted.idle()
        await restarted.close()

    asyncio.run(start_again())
    assert [n.alert_id for n in up.got] == [n.alert_id for n in sent]  # in order, none lost
    assert up.got[0] == sent[0]
    assert restarted.stats()["webhook"] == counts(sent=175, restored=175)
    assert not spool.path.exists()


def test_a_send_still_running_at_the_deadline_is_spooled_not_lost(tmp_path: Path) -> None:
    spool = NotificationSpool(tmp_path / SPOOL_FILE)
    dispatcher = Dispatcher([NotifierRoute(Hanging(), timeout_s=60)], spool=spool, drain_s=0.05)

    async def scenario() -> None:
        dispatcher.start()
        for n in notifications(3):
            dispatcher.dispatch(n)
        await asyncio.sleep(0)
        await dispatcher.close()

    asyncio.run(scenario())
    assert dispatcher.stats()["hanging"] == counts(spooled=3)
    assert [n.alert_id for _name, n in spool.load().items] == ["a0", "a1", "a2"]


def test_without_a_spool_leftovers_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    down = Collecting("webhook")
    down.fail = 10**6
    dispatcher = Dispatcher([NotifierRoute(down)])

    async def scenario() -> None:
        for n in notifications(4):
            dispatcher.dispatch(n)
        dispatcher.start()
        await dispatcher.close()

    with caplog.at_level(logging.WARNING, logger="rackwatch.engine.notifiers.dispatch"):
        asyncio.run(scenario())
    assert dispatcher.stats()["webhook"] == counts(failed=1, dropped=4)
    assert "notifier webhook: 4 notifications not delivered before stop were dropped" in (
        caplog.text
    )


def test_the_spool_is_bounded_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    spool = NotificationSpool(tmp_path / SPOOL_FILE, max_items=3)
    first = [("webhook", n) for n in notifications(2)]
    assert spool.save(first) == 0
    with spool.path.open("a") as out:
        out.write("not json\n")
    later = [("webhook", n) for n in notifications(5)[2:]]
    assert spool.save(later) == 2  # 2 + 3 kept before: the two oldest go
    loaded = spool.load()
    assert [n.alert_id for _name, n in loaded.items] == ["a2", "a3", "a4"]
    assert loaded.n_skipped == 0  # the bad line went with the oldest when it was rewritten
    spool.path.write_text('{"notifier": "x"}\nnot json\n')
    assert spool.load().n_skipped == 2 and not spool.path.exists()


def test_the_dispatcher_reports_the_webhook_retries(closed_port_url: str) -> None:
    async def no_wait(_seconds: float) -> None:
        return None

    webhook = WebhookNotifier(closed_port_url, retries=3, sleep=no_wait)
    dispatcher = Dispatcher([NotifierRoute(webhook)])

    async def scenario() -> None:
        dispatcher.start()
        dispatcher.dispatch(make_notification())
        await until(lambda: dispatcher.stats()["webhook"]["failed"] == 1)
        await dispatcher.close()

    asyncio.run(scenario())
    assert dispatcher.stats()["webhook"] == counts(failed=1, retries=3)


def test_over_the_spool_bound_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = NotificationSpool(tmp_path / SPOOL_FILE, max_items=2)
    down = Collecting("webhook")
    down.fail = 10**6
    dispatcher = Dispatcher([NotifierRoute(down)], spool=spool)

    async def scenario() -> None:
        for n in notifications(3):
            dispatcher.dispatch(n)
        await dispatcher.close()  # never started: all three left

    asyncio.run(scenario())
    assert dispatcher.stats()["webhook"] == counts(spooled=2, dropped=1)
    assert [n.alert_id for _name, n in spool.load().items] == ["a1", "a2"]
