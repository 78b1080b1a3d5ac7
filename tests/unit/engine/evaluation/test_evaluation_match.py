"""Labels, detections and matching on synthetic events: the window, the device, predictions,
load bursts and telemetry loss."""

from __future__ import annotations

from rackwatch.engine.evaluation.detections import Detection, detections_from_events
from rackwatch.engine.evaluation.match import GRACE_S, match
from rackwatch.engine.evaluation.truth import (
    EXCLUDED,
    EXPECTED,
    NOT_A_FAULT,
    SUDDEN,
    Label,
    fault_devices,
    labels_from_events,
)
from rackwatch.model.records import Event
from rackwatch.twin import FAULTS

MIN_MS = 60_000
END_MS = 600 * MIN_MS


def fault(ts: int, kind: str, entity: str, end_ts: int | None = None, **attrs: object) -> Event:
    return Event(ts, "fault.injected", entity, attributes={"fault": kind, **attrs}, end_ts=end_ts)


def incident(
    reported: int,
    devices: list[str],
    *,
    entity: str | None = None,
    start: int | None = None,
    nature: str = "real",
    scope: str = "server",
    cause: str = "fan_failure",
) -> Detection:
    return Detection(
        "incident",
        entity or devices[0],
        tuple(devices),
        reported if start is None else start,
        reported,
        nature,
        scope,
        cause,
    )


def test_every_catalogue_kind_is_counted_excluded_or_not_a_fault() -> None:
    assert set(EXPECTED) | NOT_A_FAULT | EXCLUDED == set(FAULTS)
    assert not set(EXPECTED) & (NOT_A_FAULT | EXCLUDED)
    assert set(EXPECTED) >= SUDDEN


def test_the_device_of_a_fault_is_its_server_rack_or_room() -> None:
    assert fault_devices("fan_off", "c01/r01/s03/fan1", {}) == ("c01/r01/s03",)
    assert fault_devices("sensor_stuck", "c01/r01/s09", {"metric": "airflow_cfm"}) == (
        "c01/r01/s09",
    )
    assert fault_devices("disk_failure", "c01/r02/s01", {}) == ("c01/r02/s01",)
    assert fault_devices("pdu_cap", "c01/r02/pdu", {}) == ("c01/r02",)
    assert fault_devices("airflow_misdistribution", "c01/r01", {}) == ("c01/r01",)
    assert fault_devices("crac_degradation", "room/crac1", {}) == ("room",)
    assert fault_devices("telemetry_loss", "c01/r01", {}) == ("c01/r01",)


def test_a_worn_fan_and_its_stop_are_one_label_that_lasts_to_the_end() -> None:
    events = [
        fault(10 * MIN_MS, "fan_degradation", "c01/r02/s05/fan2", end_ts=100 * MIN_MS),
        fault(100 * MIN_MS, "fan_off", "c01/r02/s05/fan2", cause="fan_degradation"),
        fault(20 * MIN_MS, "fan_off", "c01/r01/s01/fan1"),
        fault(END_MS + 1, "disk_failure", "c01/r01/s02"),  # after the run: no label
    ]
    labels = labels_from_events(events, END_MS)
    assert [(lb.kind, lb.start_ms, lb.end_ms, lb.failure_ms) for lb in labels] == [
        ("fan_degradation", 10 * MIN_MS, None, 100 * MIN_MS),
        ("fan_off", 20 * MIN_MS, None, None),
    ]


def test_a_load_burst_names_the_servers_it_picked() -> None:
    events = [fault(MIN_MS, "load_burst", "c01", servers=["c01/r01/s02", "c01/r02/s07"])]
    (label,) = labels_from_events(events, END_MS)
    assert label.devices == ("c01/r01/s02", "c01/r02/s07") and not label.is_counted


def test_incident_attributes_become_detections() -> None:
    events = [
        Event(
            5 * MIN_MS,
            "incident.opened",
            "room",
            attributes={
                "scope": "room",
                "nature": "real",
                "cause": "cooling",
                "devices": ["c01/r01/s02", "c01/r01/s01"],
                "start": 3 * MIN_MS,
                "id": "inc-1",
            },
        ),
        Event(6 * MIN_MS, "incident.updated", "room", attributes={"devices": ["c01/r01/s03"]}),
        Event(7 * MIN_MS, "anomaly.started", "c01/r01/s01", attributes={"metric": "power_watts"}),
    ]
    (found,) = detections_from_events(events)
    assert found.devices == ("c01/r01/s01", "c01/r01/s02")
    assert (found.start_ms, found.reported_ms) == (3 * MIN_MS, 5 * MIN_MS)
    assert (found.nature, found.scope, found.cause, found.id) == (
        "real",
        "room",
        "cooling",
        "inc-1",
    )


def test_a_fan_prediction_counts_once_until_it_is_cleared() -> None:
    fan = "c01/r01/s03/fan1"
    events = [
        Event(1 * MIN_MS, "prediction.fan_failure", fan),
        Event(2 * MIN_MS, "prediction.fan_failure", fan),
        Event(3 * MIN_MS, "prediction.cleared", fan),
        Event(4 * MIN_MS, "prediction.fan_failure", fan),
    ]
    found = detections_from_events(events)
    assert [(d.source, d.reported_ms, d.devices, d.cause) for d in found] == [
        ("prediction", 1 * MIN_MS, ("c01/r01/s03",), "fan_wear"),
        ("prediction", 4 * MIN_MS, ("c01/r01/s03",), "fan_wear"),
    ]


def test_the_window_runs_from_the_start_to_the_end_plus_the_grace() -> None:
    label = Label("pdu_cap", "c01/r01/pdu", ("c01/r01",), 60 * MIN_MS, 90 * MIN_MS)
    grace_min = round(GRACE_S / 60)
    starts = [59, 60, 75, 90 + grace_min, 91 + grace_min]
    found = [incident(s * MIN_MS, ["c01/r01/s02"]) for s in starts]
    m = match([label], found, END_MS)
    assert m.found == ((1, 2, 3),)
    assert m.explained == (False, True, True, True, False)
    assert m.n_false_alarms == 2


def test_an_open_ended_fault_lasts_until_the_run_ends() -> None:
    label = Label("fan_off", "c01/r01/s03/fan1", ("c01/r01/s03",), 60 * MIN_MS, None)
    late = incident(END_MS - MIN_MS, ["c01/r01/s03"])
    assert match([label], [late], END_MS).found == ((0,),)


def test_the_window_reads_the_incidents_start_not_its_report() -> None:
    label = Label("fan_off", "c01/r01/s03/fan1", ("c01/r01/s03",), 60 * MIN_MS, None)
    before = incident(61 * MIN_MS, ["c01/r01/s03"], start=59 * MIN_MS)
    assert match([label], [before], END_MS).found == ((),)


def test_the_detection_must_point_at_the_faults_device_or_under_it() -> None:
    server = Label("disk_failure", "c01/r01/s03", ("c01/r01/s03",), 0, None)
    rack = Label("pdu_cap", "c01/r02/pdu", ("c01/r02",), 0, None)
    room = Label("crac_degradation", "room/crac1", ("room",), 0, None)
    found = [
        incident(MIN_MS, ["c01/r01/s03"]),  # the server
        incident(MIN_MS, ["c01/r01/s03/fan1"]),  # a part of it
        incident(MIN_MS, ["c01/r01/s30"]),  # another server, same prefix
        incident(MIN_MS, ["c01/r02/s01", "c01/r02/s04"], entity="c01/r02", scope="rack"),
        incident(MIN_MS, ["c01/r02/pdu"], entity="c01/r02", scope="rack"),
        incident(MIN_MS, ["c01/r01"], entity="c01/r01", scope="rack"),  # above the server
    ]
    m = match([server, rack, room], found, END_MS)
    assert m.found[0] == (0, 1)
    assert m.found[1] == (3, 4)
    assert m.found[2] == (0, 1, 2, 3, 4, 5)  # everything is under the room


def test_a_room_incident_names_its_servers() -> None:
    label = Label("fan_off", "c01/r01/s03/fan1", ("c01/r01/s03",), 0, None)
    room_wide = incident(
        MIN_MS, ["c01/r01/s01", "c01/r01/s03"], entity="room", scope="room", cause="cooling"
    )
    elsewhere = incident(MIN_MS, ["c01/r01/s01"], entity="room", scope="room", cause="cooling")
    assert match([label], [room_wide, elsewhere], END_MS).found == ((0,),)


def test_a_prediction_detects_wear_only_but_is_no_false_alarm_on_a_stopped_fan() -> None:
    wear = Label("fan_degradation", "c01/r01/s01/fan2", ("c01/r01/s01",), 0, None)
    stop = Label("fan_off", "c01/r01/s03/fan1", ("c01/r01/s03",), 0, None)
    on_wear = Detection("prediction", "c01/r01/s01/fan2", ("c01/r01/s01",), MIN_MS, MIN_MS)
    on_stop = Detection("prediction", "c01/r01/s03/fan1", ("c01/r01/s03",), MIN_MS, MIN_MS)
    healthy = Detection("prediction", "c01/r01/s04/fan1", ("c01/r01/s04",), MIN_MS, MIN_MS)
    m = match([wear, stop], [on_wear, on_stop, healthy], END_MS)
    assert m.found == ((0,), ())
    assert m.explained == (True, True, False)


def test_load_bursts_and_telemetry_loss_explain_what_overlaps_them() -> None:
    burst = Label("load_burst", "c01", ("c01/r01/s02", "c01/r01/s05"), 0, 2 * MIN_MS)
    loss = Label("telemetry_loss", "c01/r02", ("c01/r02",), 0, 5 * MIN_MS)
    found = [
        incident(MIN_MS, ["c01/r01/s05"], cause="load"),
        incident(MIN_MS, ["c01/r02/s07"], nature="sensor", cause="sensor_null"),
        incident(MIN_MS, ["c01/r01/s01"], cause="load"),  # a server the burst did not pick
    ]
    m = match([burst, loss], found, END_MS)
    assert m.explained == (True, True, False)


def test_the_first_match_is_the_first_reported() -> None:
    label = Label("fan_off", "c01/r01/s03/fan1", ("c01/r01/s03",), 0, None)
    found = [incident(5 * MIN_MS, ["c01/r01/s03"]), incident(2 * MIN_MS, ["c01/r01/s03"])]
    m = match([label], found, END_MS)
    assert m.first(0) is found[1]
