"""rackwatch: monitor, control and predict failures in a server room."""

from importlib.metadata import PackageNotFoundError, version

from rackwatch.model import Batch, Command, Event, EventKind, SeriesKey, Severity

try:
    __version__ = version("rackwatch")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["Batch", "Command", "Event", "EventKind", "SeriesKey", "Severity", "__version__"]
