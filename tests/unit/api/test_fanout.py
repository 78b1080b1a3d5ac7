"""The fan-out without sockets: groups, encode-once, bounded queues, send timeouts."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from rackwatch.api.fanout import ClientClosed, ClientTooSlow, Filter, Hub, frame_bytes
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState, feed
from rackwatch.engine.meter import RateMeter
from rackwatch.model import Batch, SeriesRegistry


def registry_of(n_servers: int) -> SeriesRegistry:
    registry = SeriesRegistry()
    for s in range(1, n_servers + 1):
        registry.intern(f"c01/r01/s{s:02d}", "power_watts")
        registry.intern(f"c01/r01/s{s:02d}/fan1", "fan_rpm")
    return registry


def batch_of(registry: SeriesRegistry, ts: int, value: float) -> Batch:
    n = len(registry)
    return Batch.of(np.full(n, ts), np.arange(n), np.full(n, value))


class Recorder:
    """A client's socket that records what it is sent; `stuck` ones never finish a send."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.texts: list[str] = []
        self.stuck = stuck

    async def send(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.texts.append(text)

    def data(self) -> list[dict[str, dict[str, float]]]:
        return [json.loads(t)["data"] for t in self.texts]


def test_one_encoding_per_filter_shared_by_its_clients() -> None:
    async def scenario() -> None:
        registry = registry_of(3)
        hub = Hub(registry)
        a, b, c = (hub.connect(Recorder().send) for _ in range(3))
        assert a is not None and b is not None and c is not None
        hub.subscribe(a, Filter("c01/r01/s01/**"))
        hub.subscribe(b, Filter("c01/r01/s01/**"))
        hub.subscribe(c, Filter("**", ("fan_rpm",)))
        assert len(hub.groups) == 2
        hub.publish(batch_of(registry, 5000, 1.0))
        text_a, text_b, text_c = [await x.next() for x in (a, b, c)]
        assert text_a is text_b  # the very same string: encoded once for both
        assert json.loads(text_a)["data"] == {
            "c01/r01/s01": {"power_watts": 1.0},
            "c01/r01/s01/fan1": {"fan_rpm": 1.0},
        }
        assert set(json.loads(text_c)["data"]) == {f"c01/r01/s0{i}/fan1" for i in (1, 2, 3)}

    asyncio.run(scenario())


def test_a_full_queue_drops_its_oldest_and_counts() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        hub = Hub(registry, queue_size=4)
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        for i in range(10):
            hub.publish(batch_of(registry, i * 5000, float(i)))
        assert hub.n_dropped == client.n_dropped == 6 and client.pending == 4
        kept = [json.loads(await client.next())["ts_ms"] for _ in range(4)]
        assert kept == [30_000, 35_000, 40_000, 45_000]

    asyncio.run(scenario())


def test_a_stuck_client_times_out_while_a_fast_one_gets_everything() -> None:
    async def scenario() -> None:
        registry = registry_of(2)
        hub = Hub(registry, send_timeout_s=0.1)
        stuck_socket, fast_socket = Recorder(stuck=True), Recorder()
        stuck, fast = hub.connect(stuck_socket.send), hub.connect(fast_socket.send)
        assert stuck is not None and fast is not None
        for client in (stuck, fast):
            hub.subscribe(client, Filter())
        pumps = [asyncio.create_task(hub.pump(c)) for c in (stuck, fast)]
        loop = asyncio.get_running_loop()
        began = loop.time()
        for i in range(20):
            hub.publish(batch_of(registry, i * 5000, float(i)))  # never awaits a client
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(fast_socket.texts) == 20
        with pytest.raises(ClientTooSlow):
            await pumps[0]
        assert loop.time() - began < 0.5 and hub.n_too_slow == 1
        pumps[1].cancel()

    asyncio.run(scenario())


class Peer:
    """What the connection says the peer has not acknowledged of the bytes written to it: a
    reading peer acknowledges everything at once, a stuck one nothing."""

    def __init__(self, socket: Recorder, *, reads: bool) -> None:
        self.socket = socket
        self.reads = reads

    def backlog(self) -> int:
        return 0 if self.reads else sum(frame_bytes(t) for t in self.socket.texts)


def test_a_peer_that_stops_acknowledging_is_too_slow_though_every_send_completes() -> None:
    """The OS takes writes long after the peer stopped reading: the sends complete, but what
    was written stays unacknowledged, and that is what the timeout applies to."""

    async def scenario() -> None:
        registry = registry_of(2)
        hub = Hub(registry, send_timeout_s=0.2)
        stuck_socket, fast_socket = Recorder(), Recorder()
        stuck_peer = Peer(stuck_socket, reads=False)
        fast_peer = Peer(fast_socket, reads=True)
        stuck = hub.connect(stuck_socket.send, backlog=stuck_peer.backlog)
        fast = hub.connect(fast_socket.send, backlog=fast_peer.backlog)
        assert stuck is not None and fast is not None
        for client in (stuck, fast):
            hub.subscribe(client, Filter())
        pumps = [asyncio.create_task(hub.pump(c)) for c in (stuck, fast)]
        loop = asyncio.get_running_loop()
        began = loop.time()
        for i in range(30):  # 0.6 s: three timeouts
            hub.publish(batch_of(registry, i * 5000, float(i)))
            await asyncio.sleep(0.02)
        assert pumps[0].done(), "the stuck client was never dropped"
        with pytest.raises(ClientTooSlow):
            await pumps[0]
        assert hub.n_too_slow == 1 and len(fast_socket.texts) == 30
        assert not pumps[1].done()
        # written within about one timeout of the first unacknowledged message, no more
        assert 0 < len(stuck_socket.texts) <= 15, len(stuck_socket.texts)
        assert loop.time() - began >= 0.2
        pumps[1].cancel()

    asyncio.run(scenario())


def test_a_client_closed_by_the_server_gets_the_last_message_and_nothing_else() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        hub = Hub(registry)
        socket = Recorder()
        client = hub.connect(socket.send, token_id="abc")
        assert client is not None
        hub.subscribe(client, Filter())
        hub.publish(batch_of(registry, 5000, 1.0))  # queued, never sent: the close replaces it
        hub.close_client(client, 4401, "token revoked", "bye")
        hub.publish(batch_of(registry, 10_000, 2.0))
        with pytest.raises(ClientClosed) as closed:
            await hub.pump(client)
        assert (closed.value.code, closed.value.reason) == (4401, "token revoked")
        assert socket.texts == ["bye"] and client.group is None and not hub.groups

    asyncio.run(scenario())


def test_watch_tokens_closes_the_clients_of_a_token_that_is_gone() -> None:
    async def scenario() -> None:
        hub = Hub(registry_of(1))
        ids = {"keep", "drop"}
        kept, dropped, open_read = (
            hub.connect(Recorder().send, token_id=token) for token in ("keep", "drop", None)
        )
        hub.watch_tokens(
            lambda: set(ids), lambda c: f"bye {c.token_id}", interval_s=0.02, code=4401
        )
        await asyncio.sleep(0.1)
        assert [c.closing for c in (kept, dropped, open_read)] == [None, None, None]
        ids.discard("drop")
        await asyncio.sleep(0.1)
        assert [c.closing for c in (kept, dropped, open_read)] == [
            None,
            (4401, "token revoked"),
            None,
        ]
        assert dropped is not None and await dropped.next() == "bye drop" and hub.n_revoked == 1
        for client in (kept, dropped):
            assert client is not None
            hub.disconnect(client)
        await asyncio.sleep(0.1)  # no client with a token left: the watch ends
        assert hub._token_watch is not None and hub._token_watch.done()
        assert open_read is not None and open_read.closing is None

    asyncio.run(scenario())


def test_series_registered_later_join_matching_groups() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        hub = Hub(registry)
        socket = Recorder()
        client = hub.connect(socket.send)
        assert client is not None
        hub.subscribe(client, Filter("c01/r01/s02"))
        hub.publish(batch_of(registry, 0, 1.0))
        assert client.pending == 0
        registry.intern("c01/r01/s02", "power_watts")
        hub.publish(batch_of(registry, 5000, 2.0))
        assert json.loads(await client.next())["data"] == {"c01/r01/s02": {"power_watts": 2.0}}

    asyncio.run(scenario())


def test_client_limit_and_group_cleanup() -> None:
    hub = Hub(registry_of(1), client_limit=2)
    a, b = hub.connect(Recorder().send), hub.connect(Recorder().send)
    assert a is not None and b is not None
    assert hub.connect(Recorder().send) is None and hub.n_refused == 1
    hub.subscribe(a, Filter())
    hub.disconnect(a)
    assert hub.groups == {} and hub.n_clients == 1
    assert hub.connect(Recorder().send) is not None


def test_the_live_feed_follows_the_bus_until_it_closes_and_the_hub_fans_out() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        hub, bus = Hub(registry), MemoryBus()
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        task = asyncio.create_task(feed(bus, hub.live))
        await asyncio.sleep(0)
        await bus.publish("telemetry.twin", batch_of(registry, 5000, 3.0))
        await bus.publish("events.fault.injected", object())  # not telemetry: ignored
        assert json.loads(await client.next())["ts_ms"] == 5000
        bus.close()
        await asyncio.wait_for(task, 1)
        assert hub.live.meter.total == 2

    asyncio.run(scenario())


def test_a_hub_on_the_pipelines_table_sends_what_the_table_holds_and_stops_on_close() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        live = LiveState(2)
        live.update(batch_of(registry, 5000, 1.0))  # before any client: the first message
        hub = Hub(registry, live=live)
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        first = json.loads(await client.next())
        assert first["ts_ms"] == 5000 and first["data"]["c01/r01/s01"]["power_watts"] == 1.0
        live.update(batch_of(registry, 10_000, 2.0))  # the pipeline folds a batch in
        second = json.loads(await client.next())
        assert second["ts_ms"] == 10_000 and second["data"]["c01/r01/s01"]["power_watts"] == 2.0
        hub.close()
        live.update(batch_of(registry, 15_000, 3.0))
        assert client.pending == 0 and live.get(0) == (15_000, 3.0)

    asyncio.run(scenario())


def test_rate_meter_counts_over_its_window() -> None:
    now = [0.0]
    meter = RateMeter(window_s=10, clock=lambda: now[0])
    now[0] = 1.0
    meter.add(100)
    now[0] = 2.0
    meter.add(100)
    assert meter.rate() == 100.0 and meter.total == 200
    now[0] = 11.5
    assert meter.rate() == 10.0  # the first 100 left the window
    now[0] = 30.0
    assert meter.rate() == 0.0 and meter.total == 200


class AlertHistory:
    """Stands in for AlertEngine.recent_alerts: occurrences in the order recorded."""

    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []
        self.n_calls = 0

    def add(self, entity: str, ts_ms: int, status: str = "firing", level: str = "CRITICAL") -> None:
        alert_id = f"{entity}@{ts_ms}"
        self.items.append(
            {"id": alert_id, "entity": entity, "ts_ms": ts_ms, "status": status, "level": level}
        )

    def recent(self, since_ms: int) -> list[dict[str, object]]:
        self.n_calls += 1
        return [a for a in self.items if int(str(a["ts_ms"])) > since_ms]


def _alerts(text: str) -> list[tuple[object, object]]:
    return [(a["entity"], a["status"]) for a in json.loads(text)["alerts"]]


def test_alerts_go_once_to_each_group_under_its_glob() -> None:
    async def scenario() -> None:
        registry = registry_of(2)
        history = AlertHistory()
        history.add("c01/r01/s01/fan1", 1_000)  # before anyone subscribed: never sent
        hub = Hub(registry, recent_alerts=history.recent)
        everything, s02 = hub.connect(Recorder().send), hub.connect(Recorder().send)
        assert everything is not None and s02 is not None
        hub.subscribe(everything, Filter())
        hub.subscribe(s02, Filter("c01/r01/s02/**"))
        history.add("c01/r01/s01/fan1", 5_000, "resolved")
        history.add("c01/r01/s02/fan1", 5_000)
        history.n_calls = 0
        hub.publish(batch_of(registry, 5_000, 1.0))
        assert history.n_calls == 1  # the history is read once per batch
        assert _alerts(await everything.next()) == [
            ("c01/r01/s01/fan1", "resolved"),
            ("c01/r01/s02/fan1", "firing"),
        ]
        assert _alerts(await s02.next()) == [("c01/r01/s02/fan1", "firing")]
        hub.publish(batch_of(registry, 10_000, 1.0))  # nothing new: empty arrays
        assert _alerts(await everything.next()) == [] and _alerts(await s02.next()) == []

    asyncio.run(scenario())


def test_alerts_stamped_earlier_than_ones_already_sent_still_go_out() -> None:
    """Sources' clocks differ (the twin runs ahead of a real host): order, not time, counts."""

    async def scenario() -> None:
        registry = registry_of(1)
        history = AlertHistory()
        hub = Hub(registry, recent_alerts=history.recent)
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        history.add("c01/r01/s01", 9_000_000)
        hub.publish(batch_of(registry, 9_000_000, 1.0))
        assert len(_alerts(await client.next())) == 1
        history.add("host/db1", 1_000, "firing", "WARNING")  # from a source living in the past
        hub.publish(batch_of(registry, 9_005_000, 1.0))
        assert _alerts(await client.next()) == [("host/db1", "firing")]

    asyncio.run(scenario())


def test_a_rate_limited_group_carries_alerts_to_its_next_message() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        history = AlertHistory()
        clock = [0.0]
        hub = Hub(registry, recent_alerts=history.recent, clock=lambda: clock[0])
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter(max_rate_hz=1.0))
        hub.publish(batch_of(registry, 5_000, 1.0))  # sent at once
        assert _alerts(await client.next()) == []
        history.add("c01/r01/s01", 10_000)
        clock[0] = 0.99
        hub.publish(batch_of(registry, 10_000, 2.0))  # held until 1 s after the last message
        history.add("c01/r01/s01/fan1", 15_000)
        hub.publish(batch_of(registry, 15_000, 3.0))  # merged into the held one
        assert client.pending == 0
        message = json.loads(await client.next())
        assert message["ts_ms"] == 15_000
        assert [a["entity"] for a in message["alerts"]] == ["c01/r01/s01", "c01/r01/s01/fan1"]

    asyncio.run(scenario())


def test_more_alerts_than_the_history_holds_sends_the_history() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        history = AlertHistory()
        history.add("c01/r01/s01", 1_000)
        hub = Hub(registry, recent_alerts=history.recent)
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        history.items = []  # the marked occurrence fell out of the bounded history
        for ts in (2_000, 3_000):
            history.add("c01/r01/s01", ts)
        hub.publish(batch_of(registry, 5_000, 1.0))
        assert len(_alerts(await client.next())) == 2

    asyncio.run(scenario())


def test_a_nan_in_an_alert_is_null() -> None:
    async def scenario() -> None:
        registry = registry_of(1)
        history = AlertHistory()
        hub = Hub(registry, recent_alerts=history.recent)
        client = hub.connect(Recorder().send)
        assert client is not None
        hub.subscribe(client, Filter())
        history.add("c01/r01/s01", 1_000)
        history.items[-1]["value"] = float("nan")
        hub.publish(batch_of(registry, 5_000, 1.0))
        assert json.loads(await client.next())["alerts"][0]["value"] is None

    asyncio.run(scenario())
