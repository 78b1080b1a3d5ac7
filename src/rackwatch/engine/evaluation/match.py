"""Matching detections to labels.

A detection matches a fault when

- it starts within [fault start, fault end + grace] (end: the planned end, else the run's end;
  grace 10 min by default, for the heat that lingers), and
- it points at the fault's device: one of its devices (or its scope entity) is the device or
  lies under it (a server's fan under the server, a rack's servers under the rack, anything
  under `room`).

Incidents detect every kind; a fan failure prediction detects only fan wear, but like any
detection it is *explained* (no false alarm) when it overlaps a fault on its device. Load
bursts and telemetry losses explain the detections that overlap them without being counted
in the recall.

>>> from rackwatch.engine.evaluation.detections import Detection
>>> from rackwatch.engine.evaluation.truth import Label
>>> label = Label("pdu_cap", "c01/r01/pdu", ("c01/r01",), 10_000, 20_000)
>>> hit = Detection("incident", "c01/r01", ("c01/r01/s01",), 15_000, 16_000)
>>> wrong_rack = Detection("incident", "c01/r02", ("c01/r02/s01",), 15_000, 16_000)
>>> late = Detection("incident", "c01/r01", ("c01/r01/s01",), 700_000, 700_000)
>>> m = match([label], [hit, wrong_rack, late], run_end_ms=3_600_000)
>>> m.found, m.explained
(((0,),), (True, False, False))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rackwatch.engine.evaluation.detections import INCIDENT, Detection
from rackwatch.engine.evaluation.truth import WEAR, Label
from rackwatch.twin.topology import ROOM_PATH

GRACE_S = 600.0
"""After a fault's end, a detection that starts within this still belongs to it."""


def is_under(name: str, device: str) -> bool:
    """`name` is `device` or lies under it; everything lies under `room`.

    >>> is_under("c01/r01/s03/fan1", "c01/r01/s03"), is_under("c01/r01/s03", "c01/r01/s0")
    (True, False)
    """
    return device == ROOM_PATH or name == device or name.startswith(device + "/")


def points_at(detection: Detection, devices: Sequence[str]) -> bool:
    """One of the detection's devices (or its entity) is, or is under, one of `devices`."""
    return any(is_under(name, device) for name in detection.names() for device in devices)


def in_window(label: Label, detection: Detection, run_end_ms: int, grace_ms: int) -> bool:
    return label.start_ms <= detection.start_ms <= label.last_ms(run_end_ms) + grace_ms


def can_detect(label: Label, detection: Detection) -> bool:
    """Incidents detect any fault; a fan failure prediction detects fan wear only."""
    return detection.source == INCIDENT or label.kind == WEAR


@dataclass(frozen=True, slots=True)
class Matching:
    labels: tuple[Label, ...]
    detections: tuple[Detection, ...]
    found: tuple[tuple[int, ...], ...]
    """Per label, the detections that detect it, first reported first."""
    explained: tuple[bool, ...]
    """Per detection, whether it overlaps some label (any kind): False is a false alarm."""

    def first(self, label: int) -> Detection | None:
        """The first detection reported for that label, None if it went undetected."""
        hits = self.found[label]
        return self.detections[hits[0]] if hits else None

    @property
    def n_false_alarms(self) -> int:
        return sum(not e for e in self.explained)


def match(
    labels: Sequence[Label],
    detections: Sequence[Detection],
    run_end_ms: int,
    grace_s: float = GRACE_S,
) -> Matching:
    """Match every detection against every label (a run has tens of each at most)."""
    grace_ms = round(grace_s * 1000)
    order = sorted(
        range(len(detections)),
        key=lambda j: (detections[j].reported_ms, detections[j].start_ms),
    )
    found: list[tuple[int, ...]] = []
    explained = [False] * len(detections)
    for label in labels:
        hits = []
        for j in order:
            detection = detections[j]
            if not in_window(label, detection, run_end_ms, grace_ms):
                continue
            if not points_at(detection, label.devices):
                continue
            explained[j] = True
            if can_detect(label, detection):
                hits.append(j)
        found.append(tuple(hits))
    return Matching(tuple(labels), tuple(detections), tuple(found), tuple(explained))
