"""`rackwatch recommend`'s answer: through the REST API of the `rackwatch run` that holds the
data directory (`GET /recommend`, `GET /recommend/placement`), else from the store's newest
values and inventory: the same answer, with `source: "store"`.

From the store, "now" is the newest stored sample of the GPU machines: a machine whose newest
sample is older than its timeout before it is offline (the real machines' `[host]
offline_after_seconds`, the others' `[alerts] unknown_after_seconds`), as the server would
have said when it stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rackwatch.api.recommend_out import placement_out, recommend_out
from rackwatch.engine.recommend import (
    METRICS,
    Job,
    assess,
    exclusions,
    fleet_layout,
    gather,
)
from rackwatch.model import SeriesKey
from rackwatch.readout.fetch import OpenStore, ReadoutError, connect, read_through, read_token
from rackwatch.store.base import Store

HOST_ROOT = "host/"


@dataclass(frozen=True, slots=True)
class Ask:
    """What to answer: the recommendation (`job` None) or a placement of `job`, with at most
    `limit` candidates and rejections; the timeouts that make a stored machine offline."""

    job: Job | None = None
    limit: int = 50
    host_offline_after_s: float = 60.0
    stale_after_s: float = 60.0


def fetch_recommendation(
    open_store: OpenStore,
    data_dir: Path,
    ask: Ask,
    token: str | None = None,
    *,
    on_remote: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The answer as JSON (docs/API.md, "GPU recommendation"), from the running server or
    the store (`fetch.read_through`)."""

    def local(store: Store, _keys: Sequence[SeriesKey]) -> dict[str, Any]:
        try:
            return from_store(store, ask)
        finally:
            store.close()

    def remote(url: str) -> dict[str, Any]:
        return from_server(url, ask, lambda: read_token(token, data_dir))

    return read_through(
        open_store, data_dir, local, remote, on_remote=on_remote, again="rackwatch recommend"
    )


def from_store(store: Store, ask: Ask) -> dict[str, Any]:
    latest = store.latest("**", list(METRICS))
    ids = latest.series_ids.astype(np.int64)
    size = int(ids.max()) + 1 if len(ids) else 0
    ts = np.full(size, -1, dtype=np.int64)
    value = np.full(size, np.nan)
    ts[ids], value[ids] = latest.ts, latest.value
    layout = fleet_layout([(k.entity, k.metric) for k in latest.keys], ids)
    inventory = {record.path: record.attributes for record in store.inventory()}
    fleet = gather(layout, ts, value, inventory)
    seen = fleet.last_seen_ms[fleet.last_seen_ms >= 0]
    now_ms = int(seen.max()) if len(seen) else 0
    host_ms, other_ms = round(ask.host_offline_after_s * 1000), round(ask.stale_after_s * 1000)
    excluded = exclusions(
        fleet.machines,
        fleet.last_seen_ms.tolist(),
        now_ms=lambda _m: now_ms,
        stale_after_ms=lambda m: host_ms if m.startswith(HOST_ROOT) else other_ms,
    )
    assessment = assess(fleet, excluded)
    if ask.job is None:
        return recommend_out(assessment, now_ms, "store").model_dump(mode="json")
    placement = assessment.place(ask.job, ask.limit)
    return placement_out(assessment, placement, now_ms, "store").model_dump(mode="json")


def from_server(url: str, ask: Ask, token: Callable[[], str | None]) -> dict[str, Any]:
    api = connect(url, token)
    with contextlib.closing(api.client):
        if ask.job is None:
            answer = api.get("/recommend")
        else:
            job = ask.job
            params = [
                ("gpus", str(job.gpus)),
                ("gpu_memory_gb", repr(job.gpu_memory_gb)),
                ("cores", str(job.cores)),
                ("memory_gb", repr(job.memory_gb)),
                ("limit", str(ask.limit)),
            ]
            answer = api.get("/recommend/placement", params)
    if not isinstance(answer, dict):
        raise ReadoutError(f"{url} does not answer like a rackwatch server (GET /recommend)")
    return answer
