"""Rules on the telemetry rackwatch derives itself (`telemetry.intelligence`: health_score,
anomaly_score, time_to_failure_seconds): evaluated by threshold rules, never keeping a device
alive, never aging absence, and withdrawn series clearing their levels (issue 10)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alert_support import FakeTime

from rackwatch.bus import MemoryBus
from rackwatch.engine.alerts import AlertStatus, Rule, RuleEvaluator, RuleKind
from rackwatch.engine.alerts.engine import AlertEngine
from rackwatch.engine.states import DeviceState, SilencePolicy, UsageStatus
from rackwatch.model import Batch, Event, SeriesRegistry, Severity
from rackwatch.settings import AlertSettings, build_alert_rules

DERIVED = "intelligence"
HEALTH = "health_score"
ANOMALY = "anomaly_score"
TTF = "time_to_failure_seconds"
CPU = "cpu_temperature_celsius"
RACK = "c01/r01"
SERVER = "c01/r01/s01"
OTHER = "c01/r01/s02"
FAN = "c01/r01/s01/fan1"
HOST = "host/db1"
MIN = 60_000
HOUR_S = 3600.0
TWIN_T0 = 1_900_000_000_000
"""The twin runs ahead of the wall clock (`--speed` > 1) ..."""
HOST_T0 = 1_767_225_600_000
"""... while a real host is on the wall clock."""


def rows(reg: SeriesRegistry, ts: int, samples: dict[tuple[str, str], float]) -> Batch:
    ids = [reg.intern(entity, metric) for entity, metric in samples]
    return Batch.of([ts] * len(ids), ids, list(samples.values()))


def engine_of(reg: SeriesRegistry, rules: list[Rule], **kwargs: Any) -> AlertEngine:
    return AlertEngine(MemoryBus(), reg, rules, derived_sources=(DERIVED,), **kwargs)


def kinds(events: list[Event]) -> list[tuple[str, str, int]]:
    return [(str(e.kind), e.entity, e.ts) for e in events if str(e.kind).startswith("alert.")]


def test_a_rack_health_rule_fires_and_clears_on_intelligence_samples() -> None:
    """The docs' example: health of a rack below 50 for 5 min. The samples come on
    `telemetry.intelligence`, stamped with the twin's clock; the `for` run is measured
    between them. The rack sends nothing itself, so it gets no device state."""
    reg = SeriesRegistry()
    rule = Rule(
        "rack-health-low", HEALTH, entity="*/*", op="<", warning=50, hysteresis=5, for_s=300
    )
    engine = engine_of(reg, [rule])
    engine.process(rows(reg, TWIN_T0, {(SERVER, CPU): 60.0}), source="twin")
    events: list[Event] = []
    health = [80, 45, 40, 42, 44, 46, 41, 48, 53, 56, 70]  # one a minute
    for minute, value in enumerate(health):
        ts = TWIN_T0 + minute * MIN
        events += engine.process(rows(reg, ts, {(SERVER, CPU): 60.0}), source="twin")
        events += engine.process(
            rows(reg, ts, {(RACK, HEALTH): value, (SERVER, HEALTH): 90.0}), source=DERIVED
        )
    assert kinds(events) == [
        ("alert.fired", RACK, TWIN_T0 + 6 * MIN),  # below 50 since minute 1: 5 min held
        ("alert.resolved", RACK, TWIN_T0 + 9 * MIN),  # 56 >= 50 + 5
    ]
    fired = next(e for e in events if e.kind == "alert.fired")
    assert fired.attributes["message"] == (
        "rack-health-low — c01/r01: Health 41/100 (WARNING below 50/100)"
    )
    assert fired.attributes["metric"] == HEALTH and fired.attributes["unit"] == "score"
    assert RACK not in engine.states()  # no device state for a rack
    assert engine.states() == {SERVER: DeviceState.OK}
    assert engine.evaluator.now_ms == TWIN_T0 + 10 * MIN  # the twin's, not moved by derived


def test_derived_alerts_set_no_device_state_but_maintenance_still_suppresses() -> None:
    """A health alert on a server is listed, notified and counted in the roll-up, but the
    server's state is what its own telemetry says: the health already counts the alerts and
    states, so a health alert that lowered it would hold itself."""
    reg = SeriesRegistry()
    engine = engine_of(reg, [Rule("health-low", HEALTH, op="<", critical=50)])
    engine.process(rows(reg, TWIN_T0, {(SERVER, CPU): 60.0, (OTHER, CPU): 60.0}), source="twin")
    events = engine.process(
        rows(reg, TWIN_T0, {(SERVER, HEALTH): 30.0, (OTHER, HEALTH): 95.0}), source=DERIVED
    )
    assert [(str(e.kind), e.entity) for e in events] == [("alert.fired", SERVER)]
    [alert] = engine.active_alerts()
    assert (alert.severity, alert.status) == (Severity.CRITICAL, AlertStatus.FIRING)
    assert engine.states() == {SERVER: DeviceState.OK, OTHER: DeviceState.OK}
    assert engine.rollups()[RACK].n_critical == 1

    async def maintenance() -> None:
        await engine.set_maintenance(OTHER, "bob", "new disk")

    asyncio.run(maintenance())
    events = engine.process(rows(reg, TWIN_T0 + MIN, {(OTHER, HEALTH): 20.0}), source=DERIVED)
    assert [e.attributes["is_suppressed"] for e in events] == [True]


def test_derived_samples_never_keep_an_entity_alive_nor_move_a_clock() -> None:
    """A twin server that stopped sending goes UNKNOWN on the twin's clock even though the
    intelligence still publishes its health; an entity only the intelligence speaks of is
    never tracked; a derived sample stamped far ahead moves no clock; usage is not fed."""
    reg = SeriesRegistry()
    engine = engine_of(reg, [Rule("cpu", CPU, warning=75)], unknown_after_s=60)
    engine.process(rows(reg, TWIN_T0, {(SERVER, CPU): 60.0, (OTHER, CPU): 60.0}), source="twin")
    assert engine.is_reporting(SERVER) is True
    for minute in (1, 2, 3):
        ts = TWIN_T0 + minute * MIN
        engine.process(rows(reg, ts, {(OTHER, CPU): 60.0}), source="twin")
        derived = {
            (SERVER, HEALTH): 70.0,
            (SERVER, "cpu_utilization_ratio"): 0.99,  # no usage from a derived source
            ("c01/r09/s01", HEALTH): 100.0,  # spoken of by the intelligence only
        }
        engine.process(rows(reg, ts, derived), source=DERIVED)
    assert engine.states() == {SERVER: DeviceState.UNKNOWN, OTHER: DeviceState.OK}
    assert engine.is_reporting(SERVER) is False
    assert engine.is_reporting("c01/r09/s01") is None
    assert engine.usage() == {}
    # Far ahead of every device: neither the states' clock nor the evaluator's moves.
    engine.process(rows(reg, TWIN_T0 + 600 * MIN, {(OTHER, HEALTH): 90.0}), source=DERIVED)
    assert engine.now_ms() == TWIN_T0 + 3 * MIN
    engine.process(rows(reg, TWIN_T0 + 4 * MIN, {(OTHER, CPU): 60.0}), source="twin")
    assert engine.states()[OTHER] is DeviceState.OK


def test_an_absent_rule_ignores_derived_samples() -> None:
    """Absence is measured on the devices' own samples: the intelligence restating a fan's
    health does not reset it, and an entity only the intelligence speaks of is never
    absent."""
    reg = SeriesRegistry()
    absent = Rule("telemetry-absent", "*", kind=RuleKind.ABSENT, warning=60)
    engine = engine_of(reg, [absent])
    events: list[Event] = []
    for minute in range(4):
        ts = TWIN_T0 + minute * MIN
        device = {(OTHER, CPU): 60.0}
        if minute == 0:
            device[(FAN, "fan_rpm")] = 5000.0
        events += engine.process(rows(reg, ts, device), source="twin")
        derived = {(FAN, HEALTH): 90.0, (RACK, HEALTH): 90.0, (FAN, TTF): 10 * HOUR_S}
        events += engine.process(rows(reg, ts, derived), source=DERIVED)
    assert kinds(events) == [("alert.fired", FAN, TWIN_T0 + MIN)]
    assert engine.evaluator.levels("telemetry-absent") == {
        FAN: Severity.WARNING,
        OTHER: None,
    }


def test_a_derived_source_is_not_watched_for_silence() -> None:
    reg = SeriesRegistry()
    bus = MemoryBus()
    wall = FakeTime()
    silence = SilencePolicy(30.0, monotonic=wall, sleep=wall.sleep)
    engine = AlertEngine(
        bus,
        reg,
        [Rule("health-low", HEALTH, op="<", warning=50)],
        silence=silence,
        derived_sources=(DERIVED,),
    )

    async def scenario() -> None:
        task = asyncio.create_task(engine.run())
        await engine.ready.wait()
        await bus.publish(
            "telemetry.twin", rows(reg, TWIN_T0, {(SERVER, CPU): 60.0, (FAN, "fan_rpm"): 1.0})
        )
        await bus.publish("telemetry.intelligence", rows(reg, TWIN_T0, {(SERVER, HEALTH): 40.0}))
        for _ in range(20):
            await asyncio.sleep(0)
        assert [a.entity for a in engine.active_alerts()] == [SERVER]
        assert engine.sources() == {"twin": False}
        bus.close()
        await task

    asyncio.run(scenario())


def fan_minute(
    reg: SeriesRegistry, engine: AlertEngine, minute: int, ttf_s: float | None
) -> list[Event]:
    """One minute of a twin fan (turning, commanded on) and the intelligence's samples about
    it: its health always, its time to failure while a prediction holds."""
    ts = TWIN_T0 + minute * MIN
    device = {(FAN, "fan_rpm"): 5200.0, (FAN, "fan_level"): 2.0, (SERVER, CPU): 55.0}
    events = engine.process(rows(reg, ts, device), source="twin")
    derived = {(FAN, HEALTH): 60.0, (SERVER, HEALTH): 80.0}
    if ttf_s is not None:
        derived[(FAN, TTF)] = ttf_s
    return events + engine.process(rows(reg, ts, derived), source=DERIVED)


def test_the_default_fan_rule_warns_ahead_escalates_and_clears_when_withdrawn() -> None:
    reg = SeriesRegistry()
    engine = engine_of(reg, build_alert_rules(AlertSettings()))
    predictions: list[float | None] = [None, 30 * HOUR_S, 23 * HOUR_S, 10 * HOUR_S]
    predictions += [3 * HOUR_S, 1.5 * HOUR_S, 1.2 * HOUR_S]
    predictions += [None] * 7  # withdrawn at minute 7 (the fan was replaced)
    events: list[Event] = []
    for minute, ttf_s in enumerate(predictions):
        events += fan_minute(reg, engine, minute, ttf_s)
    alert_events = [e for e in events if str(e.kind).startswith("alert.")]
    assert [(str(e.kind), e.entity, e.attributes["rule"]) for e in alert_events] == [
        ("alert.fired", FAN, "fan-failure-predicted"),
        ("alert.escalated", FAN, "fan-failure-predicted"),
        ("alert.resolved", FAN, "fan-failure-predicted"),
    ]
    fired, escalated, resolved = alert_events
    assert fired.ts == TWIN_T0 + 2 * MIN and fired.attributes["level"] == "WARNING"
    assert fired.attributes["message"] == (
        "Fan failure predicted: plan the fan's replacement; move the load away before it fails"
        " — c01/r01/s01/fan1: Time to failure 23.0 h (WARNING below 24.0 h)"
    )
    assert escalated.ts == TWIN_T0 + 5 * MIN and escalated.attributes["level"] == "CRITICAL"
    # Last prediction at minute 6; 5 min (derived_stale_after_s) of the fan's derived
    # samples without one: resolved at minute 11, on the fan's (the twin's) clock.
    assert resolved.ts == TWIN_T0 + 11 * MIN
    assert resolved.attributes["value"] == 1.2 * HOUR_S  # its last reading
    assert resolved.attributes["message"].endswith(
        "fan1: resolved, Time to failure withdrawn (none for 5 min)"
    )
    assert engine.active_alerts() == []
    assert engine.states()[FAN] is DeviceState.OK  # a prediction is not a device state
    # A new prediction later fires again (within the cooldown: the same alert reopened).
    events = fan_minute(reg, engine, 14, 20 * HOUR_S)
    [again] = [e for e in events if e.kind == "alert.fired"]
    assert (
        again.attributes["reopened"] is True
        and again.attributes["alert_id"] == (fired.attributes["alert_id"])
    )


def test_a_prediction_that_rises_past_the_hysteresis_clears_without_waiting() -> None:
    reg = SeriesRegistry()
    engine = engine_of(reg, build_alert_rules(AlertSettings()))
    events: list[Event] = []
    for minute, hours in enumerate([20.0, 24.2, 24.6]):
        events += fan_minute(reg, engine, minute, hours * HOUR_S)
    assert kinds(events) == [
        ("alert.fired", FAN, TWIN_T0),
        ("alert.resolved", FAN, TWIN_T0 + 2 * MIN),  # 24.6 h >= 24 h + 30 min
    ]


def test_a_silent_intelligence_is_not_a_withdrawal() -> None:
    """When the intelligence stops altogether (nothing more about the fan), nothing says the
    prediction went: the alert stays, whatever the twin's clock does."""
    reg = SeriesRegistry()
    engine = engine_of(reg, build_alert_rules(AlertSettings()))
    fan_minute(reg, engine, 0, 5 * HOUR_S)
    for minute in range(1, 30):
        ts = TWIN_T0 + minute * MIN
        device = {(FAN, "fan_rpm"): 5200.0, (FAN, "fan_level"): 2.0, (SERVER, CPU): 55.0}
        engine.process(rows(reg, ts, device), source="twin")
    assert [(a.rule, a.entity) for a in engine.active_alerts()] == [("fan-failure-predicted", FAN)]


def test_each_entity_goes_stale_on_its_own_clock() -> None:
    """The twin's samples run far ahead of the host's wall clock; each derived series ages
    on its own entity's derived samples, so neither clock withdraws the other's series."""
    reg = SeriesRegistry()
    engine = engine_of(reg, [Rule("anomalous", ANOMALY, op=">", warning=0.8)])
    events: list[Event] = []
    for minute in range(12):
        twin_ts, host_ts = TWIN_T0 + minute * MIN, HOST_T0 + minute * MIN
        events += engine.process(rows(reg, twin_ts, {(SERVER, CPU): 60.0}), source="twin")
        events += engine.process(rows(reg, host_ts, {(HOST, CPU): 40.0}), source="host")
        twin = {(SERVER, ANOMALY): 0.9, (SERVER, HEALTH): 70.0}
        events += engine.process(rows(reg, twin_ts, twin), source=DERIVED)
        host = {(HOST, HEALTH): 70.0}
        if minute < 2:  # the host's anomaly ends at minute 2: no more score for it
            host[(HOST, ANOMALY)] = 0.95
        events += engine.process(rows(reg, host_ts, host), source=DERIVED)
    assert kinds(events) == [
        ("alert.fired", SERVER, TWIN_T0),
        ("alert.fired", HOST, HOST_T0),
        ("alert.resolved", HOST, HOST_T0 + 6 * MIN),  # last at 1, 5 min later on its clock
    ]


def test_a_rule_of_its_own_may_go_stale_on_device_series() -> None:
    """`stale_after_s` on a rule: a device series that stops while its entity goes on
    sending clears the level, and breaks a `for` run that had not fired yet."""
    reg = SeriesRegistry()
    disk = Rule("disk-failed", "disk_ok", op="<", critical=0.5, stale_after_s=120)
    slow = Rule("cpu-hot", CPU, warning=80, for_s=300, stale_after_s=120)
    ev = RuleEvaluator([disk, slow], reg)
    levels: list[tuple[str, int, Severity | None]] = []
    for minute in range(10):
        samples = {(SERVER, "power_watts"): 300.0}
        if minute < 2:
            samples[(SERVER, "disk_ok")] = 0.0
        if minute in (0, 1, 2, 6, 7, 8, 9):  # a gap of 4 min: the run starts again
            samples[(SERVER, CPU)] = 85.0
        for tr in ev.evaluate(rows(reg, minute * MIN, samples), "twin"):
            levels.append((tr.rule.name, tr.ts // MIN, tr.level))
    # Without stale_after_s a missing row breaks no run: cpu-hot would fire at minute 6.
    assert levels == [
        ("disk-failed", 0, Severity.CRITICAL),
        ("disk-failed", 3, None),  # last at 1, withdrawn 2 min later
    ]
    assert ev.levels("cpu-hot") == {SERVER: None}  # 6..9 is 3 min of a new 5-min run


def test_stale_after_s_is_checked() -> None:
    with pytest.raises(ValueError, match="stale_after_s must be"):
        Rule("r", HEALTH, warning=1, stale_after_s=0)
    with pytest.raises(ValueError, match="no stale_after_s"):
        Rule("r", "*", kind=RuleKind.ABSENT, warning=60, stale_after_s=60)
    with pytest.raises(ValueError, match="derived_stale_after_s"):
        RuleEvaluator([], SeriesRegistry(), derived_stale_after_s=-1)


def test_without_a_derived_default_a_withdrawn_series_holds_its_level() -> None:
    reg = SeriesRegistry()
    engine = engine_of(reg, build_alert_rules(AlertSettings()), derived_stale_after_s=None)
    for minute, ttf_s in enumerate([5 * HOUR_S, None, None, None, None, None, None, None]):
        fan_minute(reg, engine, minute, ttf_s)
    assert [a.rule for a in engine.active_alerts()] == ["fan-failure-predicted"]


def test_busy_usage_is_untouched_by_derived_batches() -> None:
    reg = SeriesRegistry()
    engine = engine_of(reg, [Rule("cpu", CPU, warning=75)])
    engine.process(rows(reg, TWIN_T0, {(SERVER, "cpu_utilization_ratio"): 0.9}), source="twin")
    engine.process(
        rows(reg, TWIN_T0 + MIN, {(SERVER, "cpu_utilization_ratio"): 0.0}), source=DERIVED
    )
    assert engine.usage() == {SERVER: UsageStatus.BUSY}
