"""Device states (precedence, UNKNOWN on silence, maintenance) and usage status."""

from __future__ import annotations

import asyncio

import pytest

from rackwatch.engine.states import (
    ROLLUP_ORDER,
    Condition,
    DeviceState,
    DeviceStates,
    SilencePolicy,
    SourceWatch,
    UsageStatus,
    UsageTracker,
    rollup_states,
    sleep_until_silence,
)
from rackwatch.model import Batch, EventKind, SeriesRegistry, Severity

SERVER, FAN = "c01/r01/s01", "c01/r01/s01/fan1"


def batch(reg: SeriesRegistry, ts_s: float, *samples: tuple[str, str, float]) -> Batch:
    ids = [reg.intern(e, m) for e, m, _ in samples]
    return Batch.of([int(ts_s * 1000)] * len(ids), ids, [v for _, _, v in samples])


def seen(reg: SeriesRegistry, ts_s: float) -> Batch:
    return batch(reg, ts_s, (SERVER, "power_watts", 200), (FAN, "fan_rpm", 7000))


def test_first_sighting_is_quiet_and_ok() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    assert states.observe(seen(reg, 0)) == []
    assert states.states() == {SERVER: DeviceState.OK, FAN: DeviceState.OK}


def test_server_is_the_worst_of_its_alerts_and_a_failure_is_failed() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    states.observe(seen(reg, 0))
    change = states.raise_condition(SERVER, "cpu", Condition(Severity.WARNING, False, "warm"), 5)
    assert change is not None and (change.previous, change.state) == (
        DeviceState.OK,
        DeviceState.WARNING,
    )
    event = change.event()
    assert event.kind == EventKind.STATE_CHANGED
    assert event.attributes == {"from": "ok", "to": "warning", "reason": "warm"}
    crit = Condition(Severity.CRITICAL, False, "hot")
    change = states.raise_condition(SERVER, "inlet", crit, 6)
    assert change is not None and change.state is DeviceState.CRITICAL
    assert states.clear_condition(SERVER, "inlet", 7) is not None
    assert states.states()[SERVER] is DeviceState.WARNING
    stopped = Condition(Severity.CRITICAL, True, "fan stopped")
    change = states.raise_condition(FAN, "fan-stopped", stopped, 8)
    assert change is not None and change.state is DeviceState.FAILED
    assert change.event().severity is Severity.CRITICAL
    assert states.clear_condition(FAN, "fan-stopped", 9) is not None
    assert states.states()[FAN] is DeviceState.OK
    assert states.clear_condition(FAN, "fan-stopped", 9) is None  # nothing to clear


def test_unknown_after_silence_and_back_when_telemetry_resumes() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg, unknown_after_s=60)
    states.observe(seen(reg, 0))
    assert states.observe(batch(reg, 59, (SERVER, "power_watts", 1))) == []
    changes = states.observe(batch(reg, 61, (SERVER, "power_watts", 1)))
    assert [(c.entity, c.state) for c in changes] == [(FAN, DeviceState.UNKNOWN)]
    assert changes[0].reason == "no telemetry for 61 s"
    changes = states.observe(seen(reg, 65))
    assert [(c.entity, c.previous, c.state) for c in changes] == [
        (FAN, DeviceState.UNKNOWN, DeviceState.OK)
    ]


def test_maintenance_covers_components_and_wins_over_everything() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    states.observe(seen(reg, 0))
    states.raise_condition(FAN, "fan-stopped", Condition(Severity.CRITICAL, True, "stopped"), 1)
    changes = states.set_maintenance(SERVER, "alice", "replace fan1", 2)
    assert {(c.entity, c.state) for c in changes} == {
        (SERVER, DeviceState.MAINTENANCE),
        (FAN, DeviceState.MAINTENANCE),
    }
    assert changes[0].event().attributes["by"] == "alice"
    assert states.in_maintenance(FAN) and not states.in_maintenance("c01/r01/s02")
    details = states.details(FAN)
    assert details is not None and details["maintenance"]["reason"] == "replace fan1"
    with pytest.raises(KeyError, match="parent"):
        states.clear_maintenance(FAN, "alice", 3)
    states.clear_condition(FAN, "fan-stopped", 3)
    changes = states.clear_maintenance(SERVER, "alice", 4)
    assert {(c.entity, c.state) for c in changes} == {
        (SERVER, DeviceState.OK),
        (FAN, DeviceState.OK),
    }


def test_maintenance_of_an_entity_not_yet_seen_and_bad_input() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    changes = states.set_maintenance("c09/r01/s01", "bob", "", 0)
    assert [c.state for c in changes] == [DeviceState.MAINTENANCE]
    assert changes[0].reason == "maintenance by bob"
    with pytest.raises(ValueError, match="who"):
        states.set_maintenance(SERVER, "", "", 0)
    with pytest.raises(ValueError, match="bad entity path"):
        states.set_maintenance("c01//s01", "bob", "", 0)


def test_only_tracked_entities_get_a_state() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg, tracked=("*/*/*",))  # servers only
    states.observe(seen(reg, 0))
    assert states.states() == {SERVER: DeviceState.OK}
    assert states.raise_condition(FAN, "x", Condition(Severity.CRITICAL, True, "x"), 1) is None


def test_usage_busy_and_idle_with_hysteresis() -> None:
    reg = SeriesRegistry()
    usage = UsageTracker(reg, busy_at_ratio=0.5, idle_below_ratio=0.3)
    util, s2 = "cpu_utilization_ratio", "c01/r01/s02"
    first = usage.update(batch(reg, 0, (SERVER, util, 0.2), (s2, util, 0.7)))
    assert [(c.entity, c.previous, c.status) for c in first] == [(s2, None, UsageStatus.BUSY)]
    assert usage.usage() == {SERVER: UsageStatus.IDLE, s2: UsageStatus.BUSY}
    assert usage.update(batch(reg, 5, (SERVER, util, 0.45), (s2, util, 0.35))) == []
    changes = usage.update(batch(reg, 10, (SERVER, util, 0.5), (s2, util, 0.29)))
    assert [(c.entity, c.previous, c.status) for c in changes] == [
        (SERVER, UsageStatus.IDLE, UsageStatus.BUSY),
        (s2, UsageStatus.BUSY, UsageStatus.IDLE),
    ]
    event = changes[0].event()
    assert event.kind == EventKind.USAGE_CHANGED
    assert event.attributes == {"from": "idle", "to": "busy", "cpu_utilization_ratio": 0.5}


def test_usage_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="idle_below_ratio"):
        UsageTracker(SeriesRegistry(), busy_at_ratio=0.3, idle_below_ratio=0.5)


def test_a_silent_source_makes_its_entities_unknown_until_it_sends_again() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg, unknown_after_s=60)
    states.observe(seen(reg, 0), "twin")
    states.observe(batch(reg, 0, ("host/db1", "power_watts", 90)), "host")
    states.raise_condition(SERVER, "cpu", Condition(Severity.WARNING, False, "warm"), 0)
    changes = states.source_silent("twin", 30_000, "source twin sent nothing for 30 s")
    assert [(c.entity, c.state, c.reason) for c in changes] == [
        (SERVER, DeviceState.UNKNOWN, "source twin sent nothing for 30 s"),
        (FAN, DeviceState.UNKNOWN, "source twin sent nothing for 30 s"),
    ]
    assert states.states()["host/db1"] is DeviceState.OK
    assert states.source_silent("twin", 40_000, "again") == []  # told once
    assert states.observe(batch(reg, 5, ("host/db1", "power_watts", 90)), "host") == []
    moved = states.observe(batch(reg, 6, (FAN, "fan_rpm", 7000)), "host")  # another source
    assert [(c.entity, c.state) for c in moved] == [(FAN, DeviceState.OK)]
    back = states.observe(seen(reg, 10), "twin")
    assert [(c.entity, c.previous, c.state) for c in back] == [
        (SERVER, DeviceState.UNKNOWN, DeviceState.WARNING),  # its alert is still active
    ]


def test_each_source_goes_stale_on_its_own_clock() -> None:
    """The twin replaying a past day and a real host on today's wall clock: neither makes
    the other's devices look silent; each goes UNKNOWN when its own clock moves on."""
    reg = SeriesRegistry()
    states = DeviceStates(reg, unknown_after_s=60)
    day = 86_400
    states.observe(seen(reg, 0), "twin")
    host_now = 300 * day  # the host's clock is months ahead of the twin's
    states.observe(batch(reg, host_now, ("host/db1", "uptime_seconds", 9)), "host")
    states.observe(seen(reg, 5), "twin")
    assert states.states() == {
        SERVER: DeviceState.OK,
        FAN: DeviceState.OK,
        "host/db1": DeviceState.OK,
    }
    later = states.observe(batch(reg, 120, (SERVER, "power_watts", 200)), "twin")
    assert [(c.entity, c.state) for c in later] == [(FAN, DeviceState.UNKNOWN)]  # twin time
    assert states.details(FAN)["reason"] == "no telemetry for 115 s"  # type: ignore[index]
    gone = states.observe(batch(reg, host_now + 90, ("host/db2", "uptime_seconds", 1)), "host")
    assert [(c.entity, c.state) for c in gone] == [("host/db1", DeviceState.UNKNOWN)]
    assert states.states()[SERVER] is DeviceState.OK


def test_a_source_watch_reports_each_silence_once_and_waits_for_a_backlog() -> None:
    watch = SourceWatch(SilencePolicy(10.0))
    watch.heard("twin", 0.0, 5_000)
    watch.postpone(8.0)  # the consumer has batches queued: not silent at 10
    assert watch.check(10.0, fallback_ms=0) == [] and watch.next_deadline() == 18.0
    [change] = watch.check(18.0, fallback_ms=0)
    assert (change.source, change.ts, change.last_sample_ms) == ("twin", 23_000, 5_000)
    assert change.event().kind == EventKind.SOURCE_UNAVAILABLE
    watch.postpone(30.0)  # a silent source stays silent until it is heard
    assert watch.is_silent("twin") and watch.check(40.0, fallback_ms=0) == []
    back = watch.heard("twin", 41.0, None)
    assert back is not None and back.event().kind == EventKind.SOURCE_RECOVERED
    assert back.ts == 5_000  # nothing newer heard: its last sample


def test_real_machines_go_unknown_after_their_own_timeout_on_their_own_clock() -> None:
    """`[host] offline_after_seconds`: an agent's host that stops while another agent goes
    on is UNKNOWN after the real machines' timeout, not the twin's `unknown_after_s`."""
    reg = SeriesRegistry()
    states = DeviceStates(reg, unknown_after_s=60, unknown_after_s_of={"agent": 20})
    states.observe(batch(reg, 0, ("host/gpu1", "uptime_seconds", 1)), "agent")
    states.observe(batch(reg, 0, ("host/gpu2", "uptime_seconds", 1)), "agent")
    states.observe(seen(reg, 0), "twin")
    assert states.observe(batch(reg, 15, ("host/gpu2", "uptime_seconds", 2)), "agent") == []
    gone = states.observe(batch(reg, 20, ("host/gpu2", "uptime_seconds", 3)), "agent")
    assert [(c.entity, c.state) for c in gone] == [("host/gpu1", DeviceState.UNKNOWN)]
    assert states.details("host/gpu1")["reason"] == "no telemetry for 20 s"  # type: ignore[index]
    states.set_maintenance("host/gpu1", "ops", "new disk", 20_000)  # says nothing of silence
    assert states.states()["host/gpu1"] is DeviceState.MAINTENANCE
    assert [states.is_reporting(h) for h in ("host/gpu1", "host/gpu2", "host/x")] == [
        False,
        True,
        None,
    ]
    # The twin's devices keep the default: 20 s of twin time is no silence for them.
    assert states.observe(batch(reg, 20, (SERVER, "power_watts", 200)), "twin") == []
    with pytest.raises(ValueError, match="unknown_after_s"):
        DeviceStates(reg, unknown_after_s_of={"agent": 0})


def test_a_source_with_its_own_policy_ignores_the_twins_speed() -> None:
    """The twin at 20x is silent after 5 s of wall clock; a host collected every 5 s is not
    (it would flap at every collection), only after its own timeout."""
    watch = SourceWatch(SilencePolicy.for_speed(30, 20), {"host": SilencePolicy(60.0)})
    watch.heard("twin", 0.0, 1_000)
    watch.heard("host", 0.0, 2_000)
    assert watch.next_deadline() == 5.0
    [twin] = watch.check(5.0, fallback_ms=0)
    assert (twin.source, twin.timeout_s) == ("twin", 5.0)
    assert watch.next_deadline() == 60.0 and watch.check(59.9, fallback_ms=0) == []
    [host] = watch.check(60.0, fallback_ms=0)
    assert (host.source, host.ts, host.timeout_s) == ("host", 62_000, 60.0)  # speed 1
    back = watch.heard("host", 61.0, 63_000)
    assert back is not None and back.timeout_s == 60.0


def test_the_watchdog_never_sleeps_past_the_shortest_timeout() -> None:
    """Asleep until the twin's 30 s deadline, it would miss a host first heard meanwhile and
    silent after 4 s: each sleep is at most the shortest timeout of all the policies."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    twin = SilencePolicy(30.0, monotonic=lambda: 0.0, sleep=sleep)
    watch = SourceWatch(twin, {"agent": SilencePolicy(4.0)})
    asyncio.run(sleep_until_silence(watch))  # nothing heard yet
    watch.heard("twin", 0.0, 1_000)
    asyncio.run(sleep_until_silence(watch))  # the twin's deadline is 30 s away
    assert slept == [4.0, 4.0]


def test_the_silence_timeout_follows_the_speed_with_a_floor() -> None:
    assert SilencePolicy.for_speed(30, 0.5).timeout_s == 60.0
    assert SilencePolicy.for_speed(30, 1000).timeout_s == 5.0
    with pytest.raises(ValueError, match="timeout_s"):
        SilencePolicy(0)


# --- roll-up: what a device shows (issue 8, item 11) -------------------------------------------

RACK, FAN2, OTHER = "c01/r01", "c01/r01/s01/fan2", "c01/r01/s02"


def test_a_server_with_a_failed_fan_shows_failed_from_its_fan() -> None:
    """The issue: the header said "OK · no active alert" while the panel listed a CRITICAL
    alert on the server's fan."""
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    states.observe(seen(reg, 0))
    states.raise_condition(FAN, "fan-stopped", Condition(Severity.CRITICAL, True, "stopped"), 1)
    own = states.states()
    assert own[SERVER] is DeviceState.OK  # its own state stays what its own alerts say
    rollups = rollup_states(own, [(FAN, Severity.CRITICAL)])
    server = rollups[SERVER]
    assert (server.state, server.rollup_state, server.rollup_from) == (
        DeviceState.OK,
        DeviceState.FAILED,
        FAN,
    )
    assert (server.n_warning, server.n_critical) == (0, 1)
    fan = rollups[FAN]
    assert (fan.rollup_state, fan.rollup_from, fan.n_critical) == (DeviceState.FAILED, None, 1)


def test_rollup_order_and_ties() -> None:
    assert ROLLUP_ORDER == (
        DeviceState.OK,
        DeviceState.MAINTENANCE,
        DeviceState.UNKNOWN,
        DeviceState.WARNING,
        DeviceState.CRITICAL,
        DeviceState.FAILED,
    )
    for worse_i, worse in enumerate(ROLLUP_ORDER):
        for better in ROLLUP_ORDER[:worse_i]:
            up = rollup_states({SERVER: better, FAN: worse})[SERVER]
            assert (up.rollup_state, up.rollup_from) == (worse, FAN)
            down = rollup_states({SERVER: worse, FAN: better})[SERVER]
            assert (down.rollup_state, down.rollup_from) == (worse, None)
    # A tie: the entity's own state first, then the first descendant in path order.
    same = DeviceState.CRITICAL
    assert rollup_states({SERVER: same, FAN: same})[SERVER].rollup_from is None
    tied = rollup_states({SERVER: DeviceState.OK, FAN2: same, FAN: same})
    assert tied[SERVER].rollup_from == FAN


def test_racks_and_clusters_show_their_devices_and_count_every_alert_under_them() -> None:
    own = {SERVER: DeviceState.WARNING, FAN: DeviceState.OK, OTHER: DeviceState.UNKNOWN}
    alerts = [
        (SERVER, Severity.WARNING),
        (SERVER, Severity.WARNING),
        (FAN, Severity.CRITICAL),
        (OTHER, Severity.INFO),  # not a level that is counted
        ("c09/r01/s01", Severity.CRITICAL),  # under nothing listed: counted nowhere
    ]
    rollups = rollup_states(own, alerts)
    assert set(rollups) == {"c01", RACK, SERVER, FAN, OTHER}
    rack = rollups[RACK]
    assert rack.state is None  # no telemetry of its own
    assert (rack.rollup_state, rack.rollup_from) == (DeviceState.WARNING, SERVER)
    assert (rack.n_warning, rack.n_critical) == (2, 1)
    assert rollups["c01"] == rack.__class__(None, DeviceState.WARNING, SERVER, 2, 1)
    assert (rollups[OTHER].rollup_state, rollups[OTHER].n_warning) == (DeviceState.UNKNOWN, 0)


def test_maintenance_of_a_server_masks_its_failed_fan_but_its_alert_still_counts() -> None:
    reg = SeriesRegistry()
    states = DeviceStates(reg)
    states.observe(seen(reg, 0))
    states.observe(batch(reg, 1, (OTHER, "power_watts", 200)))
    states.raise_condition(FAN, "fan-stopped", Condition(Severity.CRITICAL, True, "stopped"), 1)
    states.set_maintenance(SERVER, "alice", "replace fan1", 2)
    rollups = rollup_states(states.states(), [(FAN, Severity.CRITICAL)])
    server = rollups[SERVER]
    assert (server.rollup_state, server.rollup_from) == (DeviceState.MAINTENANCE, None)
    assert server.n_critical == 1  # recorded, suppressed, still open: still counted
    rack = rollups[RACK]  # the rack's worst is the server in maintenance (OTHER is OK)
    assert (rack.rollup_state, rack.rollup_from, rack.n_critical) == (
        DeviceState.MAINTENANCE,
        SERVER,
        1,
    )
