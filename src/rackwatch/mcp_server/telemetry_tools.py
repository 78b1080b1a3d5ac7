"""Read tools over the room's inventory and telemetry: `list_devices` (GET /inventory and
/states), `get_state` (GET /live) and `get_history` (GET /series).

`get_history` keeps an answer small by construction: at most `MAX_SERIES` series, and a step
chosen so that each has at most `max_points` points (raw samples when the range is short
enough), each series with its min, max, mean and last value so that the assistant rarely has
to read the points themselves.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from rackwatch.mcp_server import args, shaping
from rackwatch.mcp_server.args import EntityGlob, Metrics, TimeText
from rackwatch.mcp_server.links import Link, request_of
from rackwatch.model import METRICS
from rackwatch.model.entity import matches

READ_ONLY: Final = ToolAnnotations(read_only_hint=True, open_world_hint=False)
MAX_SERIES: Final = 12
RAW_INTERVAL_MS: Final = 5000
"""The sampling interval a raw range is sized with (the twin's step; the API's estimate)."""
STEPS_MS: Final = tuple(
    s * 1000
    for s in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600)
) + tuple(d * 86_400_000 for d in (1, 2, 7, 14, 30))
"""The steps `get_history` picks from: whole minutes and hours read the store's rollups."""
STALE_AFTER_S: Final = 60.0
"""A value this much older than its entity's newest is reported as stale by `get_state`."""


def add_telemetry_tools(server: MCPServer, link: Link) -> None:
    @server.tool(annotations=READ_ONLY)
    async def list_devices(
        ctx: Context,
        entity: EntityGlob = "**",
        kind: Annotated[
            str | None,
            Field(
                pattern=r"^[a-z_]{1,32}$",
                description=(
                    "Only this kind: server, fan, rack, cluster, pdu, outlet, crac, room, "
                    "host (a real machine), gpu, disk..."
                ),
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Most devices listed.")] = 200,
        with_attributes: Annotated[
            bool, Field(description="Also give each device's inventory attributes.")
        ] = False,
    ) -> CallToolResult:
        """List the devices of the room (servers, fans, racks, PDUs, CRAC units, real hosts)
        with their kind and health state: state (OK, WARNING, CRITICAL, FAILED, MAINTENANCE,
        UNKNOWN), rollup_state (the worst of the device and everything in it, when worse),
        open alert counts and maintenance. Start here to learn the entity paths the other
        tools take. Counts by kind and by state come first."""
        pattern = args.glob(entity)
        async with link.api(request_of(ctx)) as api:
            inventory = await api.get("/inventory", [("kind", kind)] if kind else [])
            states = await api.get_optional("/states", [("entity", pattern)])
        known = (states or {}).get("entities", {})
        rows: dict[str, dict[str, Any]] = {}
        for item in inventory.get("entities", []):
            if matches(item["path"], pattern):
                rows[item["path"]] = {"path": item["path"], "kind": item.get("kind")}
                if with_attributes:
                    rows[item["path"]]["attributes"] = item.get("attributes")
        if kind is None:  # entities that send telemetry without being in the inventory
            for entity_path in known:
                rows.setdefault(entity_path, {"path": entity_path, "kind": None})
        devices = [_device(row, known.get(path)) for path, row in sorted(rows.items())]
        shown, note = shaping.first(
            devices, limit, "devices", "narrow entity (c01/r01/**) or kind, or raise limit"
        )
        payload: dict[str, Any] = {
            "n_devices": len(devices),
            "by_kind": dict(Counter(str(d.get("kind")) for d in devices)),
            "by_state": dict(Counter(str(d.get("state")) for d in devices if "state" in d)),
            "devices": shown,
        }
        if states is None:
            payload["states_note"] = "alerting is not running on this server: no states"
        if note is not None:
            payload["note"] = note
        return shaping.result(payload)

    @server.tool(annotations=READ_ONLY)
    async def get_state(
        ctx: Context,
        entity: EntityGlob,
        metric: Metrics | None = None,
        limit: Annotated[int, Field(ge=1, le=2000, description="Most values given.")] = 300,
    ) -> CallToolResult:
        """The newest value of every metric of the matching entities (the live state), with
        its age in seconds and the metrics' units. `c01/r01/s03` is the server's own metrics
        (cpu_temperature_celsius, power_watts, cpu_utilization_ratio...); `c01/r01/s03/**`
        adds its fans, disks and GPUs. Give metric to keep only some."""
        pattern, names = args.glob(entity), args.metrics(metric)
        params = [("entity", pattern), *(("metric", m) for m in names)]
        async with link.api(request_of(ctx)) as api:
            live = await api.get("/live", params)
        entities: dict[str, Any] = {}
        units: dict[str, str] = {}
        n_values = n_shown = 0
        for path, values in sorted(live.get("entities", {}).items()):
            n_values += len(values)
            if n_shown >= limit:
                continue
            kept = dict(sorted(values.items())[: limit - n_shown])
            n_shown += len(kept)
            entities[path] = _live_entity(kept)
            units.update((m, METRICS[m].unit) for m in kept if m in METRICS)
        payload: dict[str, Any] = {"now_ms": live.get("now_ms"), "entities": entities}
        payload["units"] = units
        if not entities:
            payload["note"] = (
                "no live values match: check the entity with list_devices (a rack or cluster "
                "has none of its own; use c01/r01/** for what is in it)"
            )
        elif n_shown < n_values:
            payload["note"] = (
                f"showing {n_shown} of {n_values} values: narrow entity or metric, or raise limit"
            )
        return shaping.result(payload)

    @server.tool(annotations=READ_ONLY)
    async def get_history(
        ctx: Context,
        entity: EntityGlob,
        metric: Metrics,
        since: TimeText = "-1h",
        until: TimeText = "now",
        step: Annotated[
            str | None,
            Field(
                max_length=16,
                description=(
                    "Bucket width (30s, 5m, 1h, 1d): each point is then the bucket's mean, "
                    "low and high. Default: raw samples when the range has few enough, else "
                    "the smallest step that keeps max_points."
                ),
            ),
        ] = None,
        max_points: Annotated[
            int, Field(ge=10, le=1000, description="Most points per series.")
        ] = 120,
    ) -> CallToolResult:
        """A metric's history over a time range: per series its points (times in epoch ms)
        and its min, max, mean and last value, plus gaps (where samples are missing). At
        most 12 series: narrow entity or metric for more detail. Example: entity
        c01/r01/s03, metric cpu_temperature_celsius, since -6h."""
        pattern, names = args.glob(entity), args.metrics(metric)
        chosen = None if step is None else args.step_ms(step)
        select = [("entity", pattern), *(("metric", m) for m in names)]
        async with link.api(request_of(ctx)) as api:
            live = await api.get("/live", select)
            start, end = args.time_span(since, until, now_ms=int(live["now_ms"]))
            step_ms = _step_for(end - start, chosen, max_points)
            span = [("from", str(start)), ("to", str(end))]
            with_step = [] if step_ms is None else [("step", str(step_ms))]
            probe = await api.get(
                "/series", [*select, ("from", str(end - 1)), ("to", str(end)), *with_step]
            )
            n_series = len(probe.get("series", []))
            if n_series > MAX_SERIES:
                raise ToolError(
                    f"{n_series} series match; get_history gives at most {MAX_SERIES}: narrow "
                    "entity (one server: c01/r01/s03) or metric"
                )
            if n_series == 0:
                raise ToolError(
                    "no stored series matches this entity and metric: check them with "
                    "list_devices and get_state"
                )
            answer = await api.get("/series", [*select, *span, *with_step])
        series = [_series(item, int(answer.get("bucket_ms", 0))) for item in answer["series"]]
        return shaping.result(
            {
                "from_ms": answer.get("from_ms"),
                "to_ms": answer.get("to_ms"),
                "tier": answer.get("tier"),
                "step_ms": answer.get("bucket_ms"),
                "series": series,
            }
        )


def _device(row: dict[str, Any], state: Mapping[str, Any] | None) -> dict[str, Any]:
    if state is None:
        return row
    own, rollup = state.get("state"), state.get("rollup_state")
    alerts = {k: v for k, v in (state.get("alerts") or {}).items() if v}
    extra = {
        "state": own,
        "rollup_state": rollup if rollup != own else None,
        "rollup_from": state.get("rollup_from") if rollup not in (own, None, "OK") else None,
        "reason": state.get("reason") if own not in (None, "OK") else None,
        "usage": state.get("usage"),
        "alerts": alerts,
        "maintenance": state.get("maintenance"),
    }
    return {**row, **shaping.drop_empty(extra)}


def _live_entity(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`{"age_s", "values": {metric: value}}`, and `stale` ages of values much older than
    the entity's newest (a sensor that stopped answering)."""
    ages = {m: float(v["age_s"]) for m, v in values.items() if v.get("age_s") is not None}
    newest = min(ages.values(), default=None)
    out: dict[str, Any] = {
        "age_s": newest,
        "values": {m: v.get("value") for m, v in values.items()},
    }
    if newest is not None:
        stale = {m: age for m, age in ages.items() if age - newest > STALE_AFTER_S}
        if stale:
            out["stale_age_s"] = stale
    return out


def _step_for(span_ms: int, chosen: int | None, max_points: int) -> int | None:
    """The step of a query over `span_ms`: the chosen one if it keeps `max_points`, else
    none (raw) when raw samples do, else the smallest of `STEPS_MS` that does.

    >>> _step_for(600_000, None, 120), _step_for(6 * 3_600_000, None, 120)
    (None, 300000)
    """
    if chosen is not None:
        points = span_ms // chosen
        if points > max_points:
            raise ToolError(
                f"step {chosen} ms over this range gives {points} points per series, more than "
                f"max_points ({max_points}): give a larger step, a shorter range, or raise "
                "max_points (at most 1000)"
            )
        return chosen
    if span_ms // RAW_INTERVAL_MS <= max_points:
        return None
    for step_ms in STEPS_MS:
        if math.ceil(span_ms / step_ms) <= max_points:
            return step_ms
    return STEPS_MS[-1]


def _series(item: Mapping[str, Any], bucket_ms: int) -> dict[str, Any]:
    """One series, compact: its points, their summary and its gaps."""
    values: list[float | None] = list(item.get("value" if bucket_ms == 0 else "avg") or [])
    lows = _present(item.get("low")) if bucket_ms else _present(values)
    highs = _present(item.get("high")) if bucket_ms else _present(values)
    present = _present(values)
    out: dict[str, Any] = {
        "entity": item["entity"],
        "metric": item["metric"],
        "unit": item.get("unit"),
        "n_points": len(values),
    }
    if present:
        out["summary"] = {
            "min": min(lows or present),
            "max": max(highs or present),
            "mean": sum(present) / len(present),
            "last": present[-1],
        }
    out["ts"] = item.get("ts", [])
    if bucket_ms == 0:
        out["value"] = values
    else:
        out["avg"], out["low"], out["high"] = values, item.get("low"), item.get("high")
    if item.get("gaps"):
        out["gaps"] = item["gaps"]
    return out


def _present(values: Sequence[float | None] | None) -> list[float]:
    return [v for v in values or () if v is not None]
