"""SNMP polling of many PDUs: can one `rackwatch run` read 200 PDUs x 24 outlets within one
30 s interval?

    python bench/bench_snmp.py [--pdus 200] [--outlets 24] [--rounds 3] [--concurrency 64]
                               [--version 2c] [--profile apc-rpdu2] [--live SECONDS]

One snmpsim process (the real agent of the tests, TESTING.md recipe 3) serves every PDU: a
`.snmprec` recording per PDU is generated into a temporary directory (the community is the
file's name, `pdu000`…), the APC rPDU2 tables (power, current, name, switched state, total)
or Raritan PX's. The poller of `rackwatch run` (`PduPoller`) then reads all of them
`--rounds` times (`poll_all`: every PDU once, at most `--concurrency` reads in flight),
publishing each PDU's batch on a MemoryBus that a consumer drains, as in `rackwatch run`.

Printed per round: its wall time, this process's CPU time (the poller: pysnmp's encoding and
decoding, the profile, the batches), and snmpsim's CPU time over the same round (one
single-threaded agent standing in for 200 PDUs, each of which would answer in parallel: it is
the bound here, not the poller); whether the round fits in the 30 s interval; reads failed,
samples published; how long the event loop was held (the delay of a 5 ms sleep beyond its
5 ms, p99 and max: in `rackwatch run` the same loop drives the fans). v1 (`--version 1`)
reads with GET (the outlet count given), v2c with
GETBULK walks.

A round (`poll_all`) reads every PDU at once: the worst case. `--live SECONDS` runs the poller
as `rackwatch run` does instead (`PduPoller.run`: each PDU on its 30 s interval, PDU i of n at
i/n of it) and prints the reads, the CPU as a share of a core, the slowest read and how long
the event loop was held.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rackwatch.bus import MemoryBus
from rackwatch.model import SeriesRegistry
from rackwatch.sources.snmp.client import SnmpClient, SnmpError, SnmpTarget
from rackwatch.sources.snmp.poller import PduPoller, PduTarget
from rackwatch.sources.snmp.profiles import load_profile

INTERVAL_S = 30.0
TICK_S = 0.005
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
RESPONDER = Path(sys.executable).parent / "snmpsim-command-responder"


def apc_rows(n_outlets: int, seed: int) -> list[tuple[str, int, object]]:
    rows: list[tuple[str, int, object]] = [("1.3.6.1.2.1.1.1.0", 4, "bench PDU")]
    total = 0
    for n in range(1, n_outlets + 1):
        watts = 50 + (seed * 7 + n * 13) % 400
        total += watts
        rows += [
            (f"1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.{n}", 2, 2),
            (f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.3.{n}", 4, f"srv{seed:03d}-{n:02d}"),
            (f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.{n}", 66, watts // 23),
            (f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{n}", 66, watts),
        ]
    rows.append(("1.3.6.1.4.1.318.1.1.26.4.3.1.5.1", 2, total // 10))
    return rows


def raritan_rows(n_outlets: int, seed: int) -> list[tuple[str, int, object]]:
    rows: list[tuple[str, int, object]] = [("1.3.6.1.2.1.1.1.0", 4, "bench PDU")]
    total = 0
    for n in range(1, n_outlets + 1):
        watts = 50 + (seed * 7 + n * 13) % 400
        total += watts
        rows += [
            (f"1.3.6.1.4.1.13742.6.3.5.3.1.3.1.{n}", 4, f"srv{seed:03d}-{n:02d}"),
            (f"1.3.6.1.4.1.13742.6.4.1.2.1.3.1.{n}", 2, 7),
            (f"1.3.6.1.4.1.13742.6.5.4.3.1.4.1.{n}.1", 66, watts // 23),
            (f"1.3.6.1.4.1.13742.6.5.4.3.1.4.1.{n}.5", 66, watts),
        ]
    rows.append(("1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5", 66, total))
    return rows


def write_recordings(directory: Path, n_pdus: int, n_outlets: int, profile: str) -> None:
    make = apc_rows if profile == "apc-rpdu2" else raritan_rows
    for i in range(n_pdus):
        rows = sorted(make(n_outlets, i), key=lambda r: tuple(int(x) for x in r[0].split(".")))
        text = "".join(f"{oid}|{kind}|{value}\n" for oid, kind, value in rows)
        (directory / f"pdu{i:03d}.snmprec").write_text(text, encoding="ascii")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@contextmanager
def snmpsim(directory: Path) -> Iterator[tuple[int, int]]:
    """snmpsim serving `directory` on a free port: (port, pid); stopped by its pid."""
    command = str(RESPONDER) if RESPONDER.exists() else shutil.which("snmpsim-command-responder")
    if command is None:
        sys.exit("snmpsim is not installed: bash scripts/install --dev")
    port = free_udp_port()
    log = open(directory / "snmpsim.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            command,
            f"--data-dir={directory}",
            f"--cache-dir={directory / 'cache'}",
            f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
    )
    try:
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def wait_ready(port: int, community: str, timeout_s: float = 120.0) -> float:
    started = time.perf_counter()
    async with SnmpClient() as client:
        target = SnmpTarget("127.0.0.1", port, "2c", community, timeout_s=1.0, retries=0)
        while True:
            try:
                await client.get(target, ["1.3.6.1.2.1.1.1.0"])
                return time.perf_counter() - started
            except SnmpError:
                if time.perf_counter() - started > timeout_s:
                    raise
                await asyncio.sleep(0.2)


async def bench(args: argparse.Namespace, port: int, agent_pid: int) -> None:
    profile = load_profile(args.profile)
    targets = [
        PduTarget(
            f"pdu/p{i:03d}",
            SnmpTarget("127.0.0.1", port, args.version, f"pdu{i:03d}", timeout_s=10.0, retries=1),
            profile,
            interval_s=INTERVAL_S,
            outlet_count=args.outlets if args.version == "1" else None,
            # two outlets per machine: every machine dual-corded
            machines={n: f"host/m{i:03d}-{(n + 1) // 2:02d}" for n in range(1, args.outlets + 1)},
        )
        for i in range(args.pdus)
    ]
    bus = MemoryBus()
    poller = PduPoller(targets, SeriesRegistry(), bus, max_concurrency=args.concurrency)
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        async with bus.subscribe("telemetry.>") as subscription:
            async for _subject, batch in subscription:
                consumed += len(batch)

    lags: list[float] = []

    async def tick() -> None:
        # how long the event loop (which also drives the fans in `rackwatch run`) is held:
        # the delay of a 5 ms sleep beyond its 5 ms
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(time.perf_counter() - started - TICK_S)

    consumer = asyncio.create_task(consume())
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    if args.live:
        await live(args, poller, lags, agent_pid)
        ticker.cancel()
        bus.close()
        await consumer
        print(f"{consumed:,} samples consumed from the bus")
        return
    walls, cpus, agent_cpus = [], [], []
    for n in range(1, args.rounds + 1):
        failed_before = sum(s.n_failed for s in poller.status.values())
        published_before = poller.n_published
        agent_before = cpu_ticks(agent_pid)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await poller.poll_all()
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        agent_cpu = (cpu_ticks(agent_pid) - agent_before) / TICKS_PER_S
        failed = sum(s.n_failed for s in poller.status.values()) - failed_before
        held = sorted(lags)
        lags.clear()
        walls.append(wall)
        cpus.append(cpu)
        agent_cpus.append(agent_cpu)
        print(
            f"round {n}: {wall:6.2f} s wall, rackwatch CPU {cpu:5.2f} s, snmpsim CPU "
            f"{agent_cpu:5.2f} s, {failed} PDU(s) failed, "
            f"{poller.n_published - published_before:,} samples, "
            f"{'fits' if wall <= INTERVAL_S else 'DOES NOT fit'} in {INTERVAL_S:g} s; "
            f"event loop held p99 {held[int(len(held) * 0.99)] * 1e3:.1f} ms, "
            f"max {held[-1] * 1e3:.1f} ms"
        )
    ticker.cancel()
    bus.close()
    await consumer
    poller.close()
    print(
        f"\n{args.pdus} PDUs x {args.outlets} outlets ({args.profile}, SNMP v{args.version}, "
        f"{args.concurrency} reads in flight): median round {statistics.median(walls):.2f} s "
        f"wall ({statistics.median(walls) / INTERVAL_S:.0%} of the 30 s interval), "
        f"rackwatch CPU {statistics.median(cpus):.2f} s per round "
        f"({statistics.median(cpus) / INTERVAL_S:.1%} of one core at 30 s), snmpsim CPU "
        f"{statistics.median(agent_cpus):.2f} s; {consumed:,} samples consumed from the bus"
    )


async def live(
    args: argparse.Namespace, poller: PduPoller, lags: list[float], agent_pid: int
) -> None:
    """`rackwatch run`'s way: every PDU on its own 30 s interval, the reads spread over it."""
    agent_before = cpu_ticks(agent_pid)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    runner = asyncio.create_task(poller.run())
    await asyncio.sleep(args.live)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    agent_cpu = (cpu_ticks(agent_pid) - agent_before) / TICKS_PER_S
    held = sorted(lags)
    n_ok = sum(s.n_ok for s in poller.status.values())
    n_failed = sum(s.n_failed for s in poller.status.values())
    slowest = max((s.last_duration_s or 0.0) for s in poller.status.values())
    print(
        f"live for {wall:.1f} s ({args.pdus} PDUs x {args.outlets} outlets every "
        f"{INTERVAL_S:g} s, reads spread over the interval): {n_ok} reads, {n_failed} failed, "
        f"{poller.n_published:,} samples; rackwatch CPU {cpu / wall:.1%} of one core, "
        f"snmpsim {agent_cpu / wall:.1%}; slowest last read {slowest * 1e3:.0f} ms; event loop "
        f"held p50 {held[len(held) // 2] * 1e3:.1f} ms, p99 {held[int(len(held) * 0.99)] * 1e3:.1f}"
        f" ms, max {held[-1] * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdus", type=int, default=200)
    parser.add_argument("--outlets", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--version", choices=["1", "2c"], default="2c")
    parser.add_argument("--profile", choices=["apc-rpdu2", "raritan-px"], default="apc-rpdu2")
    parser.add_argument(
        "--live",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the poller as `rackwatch run` does (each PDU on its interval) this long",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-snmp-") as tmp:
        directory = Path(tmp)
        write_recordings(directory, args.pdus, args.outlets, args.profile)
        with snmpsim(directory) as (port, pid):
            ready_s = asyncio.run(wait_ready(port, "pdu000"))
            print(f"snmpsim serving {args.pdus} recordings, ready in {ready_s:.1f} s")
            asyncio.run(bench(args, port, pid))


if __name__ == "__main__":
    main()
