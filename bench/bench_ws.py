"""WebSocket fan-out benchmark: many clients on `rackwatch run`'s own pipeline, at speed 1.

    python bench/bench_ws.py [--clients 1000] [--seconds 20] [--filter server|all]
                             [--scenario very-large] [--client-procs 1]

The server (this process) is `rackwatch run` itself (`app.build_services` + `app.run_live`,
HTTP on 127.0.0.1, a temporary data directory): the twin at speed 1, started as `run` starts
it and paced by its poller (one step every 5 s), with the store writer, alerts and fan
control on the same loop. Nothing is re-stamped: each client records, for every
`monitoring_data`, its receipt time minus the message's own `ts_ms` (the instant the samples
describe), i.e. how long after that instant the data reached the client. The clients run in
separate processes (so they do not share the server's CPU accounting), connect to /ws,
subscribe, and record from a warm-up on. `--filter server`: client i subscribes to one server
and its fans (`c01/r01/s03/**`), so a thousand clients make as many groups as there are
servers; `all`: every client subscribes to every series.

Prints latency p50/p99/max, messages received, server CPU (user+system over the measured
window, as a share of one core) and memory (RSS now, and peak), how late each step reached the
fan-out after its instant (poller + bus), fan-out time per batch, the time until every
client's message was handed to the OS, and the server's WebSocket counters (dropped messages,
clients dropped for being too slow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import websockets


def now_ms() -> float:
    return time.time_ns() / 1e6


# ------------------------------------------------------------------------------ clients


async def run_client(
    url: str, subscribe: dict[str, Any], start_at: float, out: list[tuple[int, float]]
) -> int:
    """One client: subscribe, then record (ts_ms, latency ms) of every monitoring_data
    received from `start_at` on, until cancelled. Lean on purpose: the client processes are
    the load generator and their own delay is part of the figure."""
    async with websockets.connect(url, compression=None, max_size=2**24) as ws:
        await ws.send(json.dumps(subscribe))
        async for text in ws:
            arrived = now_ms()
            ts_at = text.find('"ts_ms":')  # monitoring_data only; cheaper than a full parse
            if ts_at < 0:
                continue
            if arrived / 1000 >= start_at:
                ts_ms = int(text[ts_at + 8 : text.index(",", ts_at)])
                out.append((ts_ms, arrived - ts_ms))


def client_process(
    url: str, filters: list[dict[str, Any]], start_at: float, stop_at: float, pipe: Connection
) -> None:
    async def main() -> tuple[list[tuple[int, float]], int]:
        latencies: list[tuple[int, float]] = []
        tasks = []
        for i, flt in enumerate(filters):
            tasks.append(asyncio.create_task(run_client(url, flt, start_at, latencies)))
            if i % 50 == 49:
                await asyncio.sleep(0.02)  # do not flood the accept queue at once
        # Once connected, move the clients' long-lived objects out of the collector's reach:
        # a full collection over a thousand connections would stall every receipt (this is
        # the load generator; the server is measured as it is).
        await asyncio.sleep(max(0.0, start_at - 1 - time.time()))
        gc.freeze()
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        failed = sum(t.done() and t.exception() is not None for t in tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gc.unfreeze()
        return latencies, failed

    latencies, failed = asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pipe.send((latencies, failed, usage.ru_utime + usage.ru_stime))


# ------------------------------------------------------------------------------ server


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def serve_and_publish(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    # Imported here, not at the top: the spawned client processes import this module and
    # should stay light (no DuckDB, no FastAPI).
    from rackwatch import app
    from rackwatch.model import Batch
    from rackwatch.settings import load_settings

    settings = load_settings(
        data_dir=data_dir,
        twin={"scenario": args.scenario, "speed": 1.0},
        server={"host": "127.0.0.1", "port": 0, "ws_client_limit": args.clients + 10},
    )
    services = app.build_services(settings)
    servers = [item["entity"] for item in services.twin.inventory() if item["kind"] == "server"]
    hub = services.api.state.hub
    loop = asyncio.get_running_loop()
    fanout_ms: list[float] = []
    step_lag_ms: list[float] = []
    sendout_ms: list[float] = []
    watchers: set[asyncio.Task[None]] = set()
    measuring = [False]
    fan_out = hub.fan_out

    async def until_sent(sent_before: int, n_clients: int, began: float) -> None:
        """Time until every connected client's message left the server (handed to the OS)."""
        deadline = began + 5.0
        while hub.n_sent - sent_before < n_clients and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        sendout_ms.append((time.perf_counter() - began) * 1000)

    def timed_fan_out(batch: Batch) -> None:
        began = time.perf_counter()
        step_late_ms = now_ms() - float(batch.ts.max())
        sent_before = hub.n_sent
        fan_out(batch)
        if measuring[0]:
            fanout_ms.append((time.perf_counter() - began) * 1000)
            step_lag_ms.append(step_late_ms)
            watcher = loop.create_task(until_sent(sent_before, hub.n_clients, began))
            watchers.add(watcher)
            watcher.add_done_callback(watchers.discard)

    # The hub follows the live state table: follow it through the timing wrapper instead.
    services.live.unlisten(fan_out)
    services.live.listen(timed_fan_out)

    gc_pauses_ms: list[float] = []
    gc_began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_began[0] = time.perf_counter()
        elif info["generation"] == 2:
            gc_pauses_ms.append((time.perf_counter() - gc_began[0]) * 1000)

    gc.callbacks.append(on_gc)

    if args.filter == "all":
        filters = [{"type": "subscribe"} for _ in range(args.clients)]
    else:
        filters = [
            {"type": "subscribe", "entity": f"{servers[i % len(servers)]}/**"}
            for i in range(args.clients)
        ]
    stop = asyncio.Event()
    urls: list[str] = []
    runner = asyncio.create_task(
        app.run_live(services, stop, serve_http=True, on_serving=urls.append)
    )
    try:
        while not urls:
            if runner.done():
                runner.result()
            await asyncio.sleep(0.01)
        ws_url = urls[0].replace("http://", "ws://") + "ws"
        connect_s = 2 + args.clients / 400
        start_at = time.time() + connect_s + 2  # warm-up: connected, subscribed, a round
        stop_at = start_at + args.seconds
        spawn = mp.get_context("spawn")
        procs, pipes = [], []
        for p in range(args.client_procs):
            parent, child = spawn.Pipe(duplex=False)
            share = filters[p :: args.client_procs]
            proc = spawn.Process(
                target=client_process, args=(ws_url, share, start_at, stop_at, child)
            )
            proc.start()
            procs.append(proc)
            pipes.append(parent)

        peak_clients = 0
        await asyncio.sleep(max(0.0, start_at - time.time()))
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        gc_pauses_ms.clear()
        measuring[0] = True
        while time.time() < stop_at:
            peak_clients = max(peak_clients, hub.n_clients)
            await asyncio.sleep(0.1)
        measuring[0] = False
        usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        results = []
        for pipe in pipes:
            results.append(await asyncio.to_thread(pipe.recv))
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
    finally:
        stop.set()
        await runner
        services.close()
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    step_ms = services.twin.step_ms
    first_in = -(-int(start_at * 1000) // step_ms) * step_ms  # steps stamped in the window
    n_steps = len(range(first_in, int(stop_at * 1000), step_ms))
    return {
        "url": ws_url,
        "series": len(services.registry),
        "servers": len(servers),
        "step_s": step_ms / 1000,
        "n_steps": n_steps,
        "results": results,
        "cpu_share": cpu_s / (wall1 - wall0),
        "rss": rss_bytes(),
        "peak_rss": usage1.ru_maxrss * 1024,
        "fanout_ms": fanout_ms,
        "step_lag_ms": step_lag_ms,
        "sendout_ms": sendout_ms,
        "gc_pauses_ms": gc_pauses_ms,
        "peak_clients": peak_clients,
        "hub": hub,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--filter", choices=["server", "all"], default="server")
    parser.add_argument("--scenario", default="very-large")
    parser.add_argument("--client-procs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(serve_and_publish(args, Path(tmp)))
    pairs = np.concatenate([np.asarray(r[0], dtype=float).reshape(-1, 2) for r in out["results"]])
    rounds, latencies = pairs[:, 0], pairs[:, 1]
    failed = sum(r[1] for r in out["results"])
    client_cpu_s = sum(r[2] for r in out["results"])
    hub = out["hub"]
    expected = args.clients * out["n_steps"]
    print(
        f"clients {args.clients} (filter {args.filter}, {out['servers']} servers, "
        f"{out['series']} series), the twin at speed 1 (one step every {out['step_s']:g} s) "
        f"for {args.seconds:g} s, clients in {args.client_procs} process(es); "
        f"peak connected {out['peak_clients']}, failed {failed}"
    )
    if len(latencies) == 0:
        print("no message received in the window")
        return
    p50, p99 = np.percentile(latencies, [50, 99])
    print(
        f"latency sample ts_ms -> receipt: p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
        f"min {latencies.min():.1f} ms  max {latencies.max():.1f} ms  "
        f"({len(latencies):,} messages in the window, "
        f"{len(latencies) / max(expected, 1):.1%} of {expected:,} expected)"
    )
    worst = sorted(
        (
            (float(latencies[rounds == r].max()), float(np.median(latencies[rounds == r])))
            for r in np.unique(rounds)
        ),
        reverse=True,
    )[:3]
    print(
        "worst rounds (max / median ms): " + ", ".join(f"{mx:.0f} / {med:.0f}" for mx, med in worst)
    )
    lag = out["step_lag_ms"]
    if lag:
        print(
            f"server: step instant -> fan-out (poller + bus): median "
            f"{statistics.median(lag):.1f} ms, max {max(lag):.1f} ms"
        )
    fan = out["fanout_ms"]
    print(
        f"server: CPU {out['cpu_share']:.1%} of one core, RSS {out['rss'] / 1e6:.0f} MB "
        f"(peak {out['peak_rss'] / 1e6:.0f} MB); fan-out per batch (encode + enqueue) "
        f"median {statistics.median(fan or [0]):.2f} ms, max {max(fan, default=0):.2f} ms"
    )
    out_ms = out["sendout_ms"]
    print(
        f"server: publish -> last client's message handed to the OS: median "
        f"{statistics.median(out_ms or [0]):.1f} ms, max {max(out_ms, default=0):.1f} ms; "
        f"full garbage collections {len(out['gc_pauses_ms'])}, "
        f"longest {max(out['gc_pauses_ms'], default=0):.0f} ms"
    )
    print(
        f"server counters: sent {hub.n_sent:,}, dropped {hub.n_dropped}, "
        f"too slow {hub.n_too_slow}, refused {hub.n_refused}; "
        f"client processes used {client_cpu_s:.1f} s of CPU in all"
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
