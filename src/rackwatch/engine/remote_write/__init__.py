"""Prometheus remote write: telemetry sent on to a TSDB a site already runs (VictoriaMetrics,
Mimir, Thanos receive, Prometheus itself); docs/REMOTE_WRITE.md.

`encode.py` turns Batches into WriteRequest bytes (pure); `sink.py` is the bus consumer that
batches, compresses and posts them.
"""

from rackwatch.engine.remote_write.encode import (
    PREFIX,
    STALE_NAN_BITS,
    NullPolicy,
    WriteRequest,
    WriteRequestEncoder,
    metric_name,
    path_parts,
)
from rackwatch.engine.remote_write.sink import RemoteWriteSink

__all__ = [
    "PREFIX",
    "STALE_NAN_BITS",
    "NullPolicy",
    "RemoteWriteSink",
    "WriteRequest",
    "WriteRequestEncoder",
    "metric_name",
    "path_parts",
]
