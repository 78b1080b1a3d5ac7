"""The incident book's grouping rules on hand-made findings."""

from __future__ import annotations

from rackwatch.engine.diagnosis import Cause, DiagnosisConfig, Finding, IncidentBook, Nature
from rackwatch.model import Event

MIN = 60_000


def finding(
    device: str,
    cause: Cause,
    ts: int,
    *,
    nature: Nature = Nature.REAL,
    metric: str = "cpu_temperature_celsius",
    spreads: bool = False,
) -> Finding:
    return Finding(
        ts=ts,
        device=device,
        nature=nature,
        cause=cause,
        key=("anomaly", device, metric, str(ts)),
        entity=device,
        metric=metric,
        detector="deviation",
        start_ms=ts,
        evidence=f"{metric} of {device}",
        spreads=spreads,
    )


def inlet(device: str, ts: int) -> Finding:
    return finding(device, Cause.COOLING, ts, metric="inlet_temperature_celsius", spreads=True)


def kinds(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.entity, str(e.attributes["cause"])) for e in events]


def test_inlets_warming_in_one_rack_make_one_airflow_incident_of_that_rack() -> None:
    book = IncidentBook(DiagnosisConfig(spread_devices=3))
    assert book.add(inlet("c01/r02/s01", 0)) == []
    assert book.add(inlet("c01/r02/s02", MIN)) == []
    events = book.add(inlet("c01/r02/s03", 2 * MIN))
    assert kinds(events)[0] == ("incident.opened", "c01/r02", "airflow")
    assert events[-1].attributes["devices"] == ["c01/r02/s01", "c01/r02/s02", "c01/r02/s03"]
    assert events[-1].attributes["scope"] == "rack"
    # a fourth joins it instead of opening its own
    assert kinds(book.add(inlet("c01/r02/s04", 3 * MIN))) == [
        ("incident.updated", "c01/r02", "airflow")
    ]


def test_inlets_warming_across_racks_make_one_room_cooling_incident() -> None:
    book = IncidentBook(DiagnosisConfig(spread_devices=3))
    book.add(inlet("c01/r01/s01", 0))
    book.add(inlet("c01/r02/s01", MIN))
    events = book.add(inlet("c02/r01/s05", 2 * MIN))
    assert kinds(events)[0] == ("incident.opened", "room", "cooling")
    assert len(book.incidents()) == 1 and len(book.incidents()[0].devices) == 3


def test_inlets_warming_too_far_apart_in_time_never_spread() -> None:
    book = IncidentBook(DiagnosisConfig(spread_devices=3, spread_s=600))
    book.add(inlet("c01/r01/s01", 0))
    book.add(inlet("c01/r01/s02", MIN))
    book.tick(20 * MIN)
    assert book.add(inlet("c01/r01/s03", 20 * MIN)) == []
    assert book.incidents() == []


def test_a_room_cooling_incident_absorbs_vague_findings_of_the_devices_it_covers() -> None:
    book = IncidentBook()
    book.add(finding("room/crac1", Cause.COOLING, 0, metric="crac_supply_temperature_celsius"))
    events = book.add(finding("c01/r01/s01", Cause.UNKNOWN, MIN))
    assert kinds(events) == [("incident.updated", "room", "cooling")]
    # a definite cause of its own stands apart
    events = book.add(finding("c01/r01/s02", Cause.FAN_FAILURE, 2 * MIN))
    assert kinds(events) == [("incident.opened", "c01/r01/s02", "fan_failure")]


def test_a_definite_cause_replaces_a_vague_one_on_the_same_device() -> None:
    book = IncidentBook()
    book.add(finding("c01/r01/s01", Cause.UNKNOWN, 0))
    events = book.add(finding("c01/r01/s01", Cause.FAN_FAILURE, MIN, metric="fan_rpm"))
    assert kinds(events) == [("incident.updated", "c01/r01/s01", "fan_failure")]
    assert "Move the load away" in str(events[0].attributes["action"])


def test_sensor_faults_stay_one_per_device_and_cause() -> None:
    book = IncidentBook()
    a = book.add(finding("c01/r01/s01", Cause.SENSOR_NULL, 0, nature=Nature.SENSOR))
    b = book.add(finding("c01/r01/s02", Cause.SENSOR_NULL, 0, nature=Nature.SENSOR))
    assert [e.entity for e in a + b] == ["c01/r01/s01", "c01/r01/s02"]
    assert "Do not act on" in str(a[0].attributes["action"])


def test_an_incident_closes_quiet_s_after_its_last_member_ended() -> None:
    book = IncidentBook(DiagnosisConfig(quiet_s=300))
    f = finding("c01/r01/s01", Cause.FAN_FAILURE, 0)
    book.add(f)
    book.end(f.key, 10 * MIN)
    assert book.tick(14 * MIN) == []
    closed = book.tick(15 * MIN)
    assert kinds(closed) == [("incident.closed", "c01/r01/s01", "fan_failure")]
    assert closed[0].attributes["end"] == 15 * MIN and book.incidents() == []
