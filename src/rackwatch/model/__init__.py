"""Pure vocabulary shared by every part: records, entity paths, series ids, the metric table."""

from rackwatch.model.catalogue import METRICS, MetricKind, MetricSpec
from rackwatch.model.records import Batch, Command, CommandAction, Event, EventKind, Severity
from rackwatch.model.series import SeriesKey, SeriesRegistry

__all__ = [
    "METRICS",
    "Batch",
    "Command",
    "CommandAction",
    "Event",
    "EventKind",
    "MetricKind",
    "MetricSpec",
    "SeriesKey",
    "SeriesRegistry",
    "Severity",
]
