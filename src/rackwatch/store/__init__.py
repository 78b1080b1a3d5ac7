"""Time series at rest: raw samples, 1-minute and 1-hour rollups, events and the inventory.

`Store` is the protocol; `DuckDBStore` (rackwatch.store.duckdb) the embedded implementation.
"""

from rackwatch.store.base import (
    RAW_COLUMNS,
    ROLLUP_COLUMNS,
    EntityRecord,
    Latest,
    Query,
    QueryResult,
    Retention,
    Store,
    StoreStats,
    StoreUsage,
    Tier,
    choose_tier,
)
from rackwatch.store.duckdb import DuckDBStore

__all__ = [
    "RAW_COLUMNS",
    "ROLLUP_COLUMNS",
    "DuckDBStore",
    "EntityRecord",
    "Latest",
    "Query",
    "QueryResult",
    "Retention",
    "Store",
    "StoreStats",
    "StoreUsage",
    "Tier",
    "choose_tier",
]
