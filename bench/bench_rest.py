"""REST series query benchmark: GET /api/v1/series over one simulated day.

    python bench/bench_rest.py [--scenario very-large] [--repeat 20] [--dir DIR]

Simulates one day of the scenario with `rackwatch.app.simulate` (5 s samples, rollups built
as they are written) into a fresh store (or reuses `--dir` if it already holds one), serves
the app with uvicorn on 127.0.0.1 in a thread, and times complete HTTP answers from a client
in another process, as a browser or a script would be (request sent to last byte read; the
client does not parse the JSON), for:

- one server and its fans, the whole day in 1-minute buckets (the server page's chart);
- every series, the whole day in 1-minute buckets;
- every series, the whole day in 1-hour buckets;
- one server and its fans, the whole day of raw 5 s rows.

Prints median and p95 latency, rows and bytes per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from rackwatch import app as wiring
from rackwatch.api import ApiContext, create_app
from rackwatch.api.server import serving
from rackwatch.bus import MemoryBus
from rackwatch.engine.live import LiveState
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings

DAY_MS = 86_400_000


def serve_in_thread(application: Any) -> tuple[str, threading.Event, threading.Thread]:
    ready, stop_flag, urls = threading.Event(), threading.Event(), []

    async def main() -> None:
        async with serving(application, "127.0.0.1", 0) as url:
            urls.append(url)
            ready.set()
            while not stop_flag.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the server did not start")
    return urls[0], stop_flag, thread


def time_cases(
    url: str, cases: list[tuple[str, dict[str, Any]]], repeat: int
) -> list[tuple[str, list[float], int, int]]:
    """Run in the client's own process: (name, times in ms, bytes, rows) per case."""
    with httpx.Client(base_url=url, timeout=120) as client:
        return [(name, *time_query(client, params, repeat)) for name, params in cases]


def time_query(
    client: httpx.Client, params: dict[str, Any], repeat: int
) -> tuple[list[float], int, int]:
    times, size, rows = [], 0, 0
    for i in range(repeat + 1):
        began = time.perf_counter()
        response = client.get("/api/v1/series", params=params)
        body = response.read()
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"{params}: {response.status_code} {response.text[:300]}")
        if i == 0:  # the first one warms the caches; count its rows once
            size = len(body)
            answer = response.json()
            rows = sum(len(s["ts"]) for s in answer["series"])
            continue
        times.append(elapsed * 1000)
    return times, size, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="very-large")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="keep/reuse the store here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.dir or Path(tmp)
        settings = load_settings(data_dir=out, twin={"scenario": args.scenario})
        if not wiring.store_path(out).exists():
            began = time.perf_counter()
            summary = wiring.simulate(settings, duration_s=86_400, out=out)
            print(
                f"simulated one day of {summary.scenario}: {summary.n_series} series, "
                f"{summary.n_samples:,} samples in {time.perf_counter() - began:.1f} s"
            )
        registry = SeriesRegistry()
        store = wiring.open_store(settings, registry, out)
        try:
            latest = store.latest()
            end = int(latest.ts.max()) + 1
            start = end - DAY_MS
            server = next(k.entity for k in latest.keys if k.entity.count("/") == 2)
            ctx = ApiContext(store=store, registry=registry, live=LiveState(), bus=MemoryBus())
            url, stop_flag, thread = serve_in_thread(create_app(ctx))
            cases = [
                ("one server, 1m", {"entity": f"{server}/**", "step": "1m"}),
                ("all series, 1m", {"step": "1m"}),
                ("all series, 1h", {"step": "1h"}),
                ("one server, raw", {"entity": f"{server}/**"}),
            ]
            print(f"GET /api/v1/series over one day ({len(registry)} series), {args.repeat} runs")
            cases = [(name, {**params, "from": start, "to": end}) for name, params in cases]
            with multiprocessing.get_context("spawn").Pool(1) as client_process:
                measured = client_process.apply(time_cases, (url, cases, args.repeat))
            for name, times, size, rows in measured:
                p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
                print(
                    f"  {name:<16} median {statistics.median(times):8.1f} ms   "
                    f"p95 {p95:8.1f} ms   {rows:>9,} rows   {size / 1e6:6.2f} MB"
                )
            stop_flag.set()
            thread.join(10)
        finally:
            store.close()


if __name__ == "__main__":
    main()
