"""Reading stored series back out for `rackwatch query` and `rackwatch export`: from the store,
or through the REST API of the `rackwatch run` that holds it (its address is in the data
directory's `server.json`, see `server_file`), printed as a table, CSV or JSON (`formats`), or
written to files by day (`export`)."""

from rackwatch.readout.fetch import (
    Answer,
    NoSeries,
    ReadoutError,
    Request,
    SeriesRows,
    UnknownMetric,
    fetch_answer,
    from_server,
    from_store,
)

__all__ = [
    "Answer",
    "NoSeries",
    "ReadoutError",
    "Request",
    "SeriesRows",
    "UnknownMetric",
    "fetch_answer",
    "from_server",
    "from_store",
]
