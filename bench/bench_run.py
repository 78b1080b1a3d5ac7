"""`rackwatch run` end to end: resident memory and write-ahead log size over time, then restart.

    python bench/bench_run.py [--speed 3000] [--hours 24] [--clusters 1] [--interval 1]
                              [--max-wall 900] [--start-timeout 180] [--clean-seconds 10]
                              [--clean-fresh-dir] [--dir DIR] [--keep]

    e.g. python bench/bench_run.py --hours 2                      # 20 servers
         python bench/bench_run.py --clusters 100 --speed 50 --hours 0.1   # 2,000 servers

Starts `rackwatch run --speed S --clusters C --port 0 --data-dir D` (the executable next to
this Python) in a fresh data directory, as a user would, and every `--interval` seconds prints
one row: wall seconds, simulated time covered (h:mm:ss) and the speed reached over the
interval (x real time), samples stored (`samples_total` of `GET /api/v1/status`), resident
memory of the process (VmRSS, and its peak VmHWM), the size of the write-ahead log
(`D/rackwatch-wal/*.wal`) in MiB and in simulated minutes of data, the size of the database
files (`rackwatch.duckdb` and DuckDB's own `rackwatch.duckdb.wal`), the time the status
request took (a stall of the server shows there) and the log's generation files.

Log in simulated minutes: the log size divided by the log's growth rate, in bytes per
simulated second, measured over the sampling intervals in which the log grew without a change
of generation (no flush); the rate and the bytes per sample it implies are printed.

It stops when the simulated time covered reaches `--hours` (or after `--max-wall` seconds),
kills the process with SIGKILL (a crash), and times the restart: opening the store in this
process (`DuckDBStore(D / "rackwatch.duckdb", SeriesRegistry())`, which replays the log), and
closing it. Then it starts `rackwatch run` again for `--clean-seconds`, stops it with SIGINT
(Ctrl-C) and reports the log left after a clean stop. That run restarts in the crashed run's
directory, as a user would after a crash (its simulated clock continues after the stored data);
`--clean-fresh-dir` gives it a new one. A summary ends it: steady-state RSS (median and
max over the second half of the simulated time), peak RSS, the largest log (MiB and simulated
minutes), replay time.

`--clusters 1` is the default very-large room (20 servers); `--clusters 100` is 2,000 servers.
The simulated clock starts at the wall clock (rounded to 5 s) when the process starts, so the
simulated time covered is `sim_time_ms` minus the launch time (within 5 s).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rackwatch.model import SeriesRegistry
from rackwatch.store.duckdb import DuckDBStore

MIB = 2**20
DASHBOARD = re.compile(r"Dashboard:\s+(http://\S+?/)(?:\s|$)")
ROOM = re.compile(r"scenario (\S+) \(([\d,]+ servers, [\d,]+ series)\)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


# ------------------------------------------------------------------------------ the process


class RunProcess:
    """`rackwatch run` as a child process; its output is read by a thread (the last lines are
    kept for error messages) and the dashboard URL is taken from it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.command = args
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.url: str | None = None
        self.room = "?"
        self._url_seen = threading.Event()
        self.started = time.perf_counter()
        # A session of its own: Ctrl-C in this terminal reaches the benchmark only, which
        # then kills the child (see `kill`), instead of both racing to stop.
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="run-stdout", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # until EOF: the child never blocks on a full pipe
            line = ANSI.sub("", raw.decode("utf-8", "replace")).rstrip()
            self.tail.append(line)
            if self.room == "?" and (m := ROOM.search(line)):
                self.room = f"{m.group(1)}, {m.group(2)}"
            if self.url is None and (m := DASHBOARD.search(line)):
                self.url = m.group(1)
                self._url_seen.set()
        self._url_seen.set()  # EOF: wake a waiter (the process ended)

    def wait_url(self, timeout: float) -> str:
        self._url_seen.wait(timeout)
        if self.url is None:
            try:  # the output ended: the process is on its way out
                state = f"it exited with code {self.proc.wait(5)}"
            except subprocess.TimeoutExpired:
                state = f"it did not serve within {timeout:g} s"
            self.kill()
            raise SystemExit(
                f"rackwatch run failed to start ({state}):\n"
                f"  {' '.join(self.command)}\n" + self.output_tail()
            )
        return self.url

    def output_tail(self, n: int = 30) -> str:
        self._reader.join(timeout=1)
        lines = list(self.tail)[-n:]
        return "\n".join("  | " + line for line in lines) or "  (no output)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def interrupt(self, timeout: float) -> tuple[int | None, float]:
        """SIGINT (Ctrl-C), then wait for the exit: (return code or None, seconds waited)."""
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.kill()
        return rc, time.perf_counter() - start


def proc_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; NaN once it is gone."""
    out = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in out:
                out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out["VmRSS"], out["VmHWM"]


def self_mib(field: str) -> float:
    return proc_mib(os.getpid())[0 if field == "VmRSS" else 1]


def reset_self_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def get_status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "api/v1/status", timeout=5) as resp:
            out: dict[str, Any] = json.load(resp)
            return out
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------ the files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed between the listing and the stat (a new log generation)
        return 0


def log_files(data_dir: Path) -> tuple[int, tuple[str, ...]]:
    """(total bytes, generation file names) of the store's write-ahead log."""
    files = sorted((data_dir / "rackwatch-wal").glob("*.wal"))
    return sum(_size(p) for p in files), tuple(p.name for p in files)


def db_bytes(data_dir: Path) -> int:
    return _size(data_dir / "rackwatch.duckdb") + _size(data_dir / "rackwatch.duckdb.wal")


# ------------------------------------------------------------------------------ sampling


@dataclass
class Row:
    wall_s: float
    api_ms: float
    sim_s: float | None
    samples: int | None
    rss_mib: float
    hwm_mib: float
    log_bytes: int
    log_gens: tuple[str, ...]
    db_bytes: int


class LogRate:
    """Bytes the log gains per simulated second (and per sample), from the intervals in which
    it grew with no change of generation, i.e. no flush in between."""

    def __init__(self) -> None:
        self.d_bytes = 0
        self.d_sim = 0.0
        self.d_samples = 0
        self._last: Row | None = Row(0.0, 0.0, 0.0, 0, 0.0, 0.0, 0, (), 0)  # the empty start

    def add(self, row: Row) -> None:
        last = self._last
        if row.sim_s is None or row.samples is None:
            return
        if last is not None and last.sim_s is not None and last.samples is not None:
            same_gen = not last.log_gens or (row.log_gens and row.log_gens[-1] == last.log_gens[-1])
            grew = row.log_bytes - last.log_bytes
            if same_gen and grew > 0 and row.sim_s > last.sim_s:
                self.d_bytes += grew
                self.d_sim += row.sim_s - last.sim_s
                self.d_samples += row.samples - last.samples
        self._last = row

    @property
    def bytes_per_sim_s(self) -> float | None:
        return self.d_bytes / self.d_sim if self.d_sim > 0 else None

    @property
    def bytes_per_sample(self) -> float | None:
        return self.d_bytes / self.d_samples if self.d_samples > 0 else None

    def minutes(self, log_bytes: int) -> float | None:
        rate = self.bytes_per_sim_s
        return log_bytes / rate / 60 if rate else None


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


HEADER = (
    f"{'wall s':>7} {'sim h:m:s':>10} {'x real':>7} {'samples':>12} {'RSS MiB':>8} "
    f"{'peak MiB':>8} {'log MiB':>8} {'log min':>8} {'DB MiB':>7} {'API ms':>7}  log files"
)


def print_row(row: Row, prev: Row | None, rate: LogRate) -> None:
    speed = None
    if prev is not None and row.sim_s is not None and prev.sim_s is not None:
        speed = (row.sim_s - prev.sim_s) / max(row.wall_s - prev.wall_s, 1e-9)
    gens = ",".join(g.removesuffix(".wal").lstrip("0") or "0" for g in row.log_gens)
    print(
        f"{row.wall_s:7.1f} {hms(row.sim_s):>10} {fmt(speed, '7.0f'):>7} "
        f"{fmt(row.samples, '12,d'):>12} {row.rss_mib:8.1f} {row.hwm_mib:8.1f} "
        f"{row.log_bytes / MIB:8.2f} {fmt(rate.minutes(row.log_bytes), '8.1f'):>8} "
        f"{row.db_bytes / MIB:7.2f} {row.api_ms:7.0f}  gen {gens or '-'}",
        flush=True,
    )


def sample(run: RunProcess, url: str, data_dir: Path, launch_ms: int) -> Row:
    start = time.perf_counter()
    status = get_status(url)
    api_ms = (time.perf_counter() - start) * 1000
    rss, hwm = proc_mib(run.pid)
    log_bytes, gens = log_files(data_dir)
    sim_s = samples = None
    if status is not None:
        samples = status.get("samples_total")
        if status.get("sim_time_ms") is not None:
            sim_s = max(0.0, (status["sim_time_ms"] - launch_ms) / 1000)
    return Row(
        time.perf_counter() - run.started, api_ms, sim_s, samples, rss, hwm, log_bytes, gens,
        db_bytes(data_dir),
    )  # fmt: skip


# ------------------------------------------------------------------------------ main


def start_run(args: argparse.Namespace, data_dir: Path) -> tuple[RunProcess, int]:
    exe = Path(sys.executable).with_name("rackwatch")
    if not exe.exists():
        raise SystemExit(f"no rackwatch executable beside {sys.executable}")
    command = [
        str(exe), "run", "--speed", f"{args.speed:g}", "--clusters", str(args.clusters),
        "--port", "0", "--data-dir", str(data_dir),
    ]  # fmt: skip
    env = dict(os.environ, COLUMNS="200", TERM="dumb", NO_COLOR="1", PYTHONUNBUFFERED="1")
    launch_ms = (time.time_ns() // 1_000_000) // 5000 * 5000  # the twin's start, within 5 s
    return RunProcess(command, env), launch_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=3000.0, help="simulated s per wall s")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours to cover")
    parser.add_argument(
        "--clusters", type=int, default=1, help="1 = 20 servers (very-large); 100 = 2,000"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--max-wall", type=float, default=900.0, help="stop after this (s)")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="s to serve")
    parser.add_argument("--clean-seconds", type=float, default=10.0, help="0 to skip")
    parser.add_argument(
        "--clean-fresh-dir", action="store_true", help="clean run in a new data directory"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary directory goes")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs the cleanup below too

    base = Path(tempfile.mkdtemp(prefix="bench_run_", dir=args.dir))
    data_dir = base / "data"
    runs: list[RunProcess] = []
    try:
        run, launch_ms = start_run(args, data_dir)
        runs.append(run)
        print(f"$ {' '.join(run.command)}", flush=True)
        url = run.wait_url(args.start_timeout)
        load = os.getloadavg()
        print(
            f"{run.room}: serving {url} after {time.perf_counter() - run.started:.1f} s "
            f"(pid {run.pid}); "
            f"{os.cpu_count()} CPUs, load {load[0]:.2f}; target {args.hours:g} simulated h "
            f"at {args.speed:g}x, sample every {args.interval:g} s, at most {args.max_wall:g} s",
            flush=True,
        )
        print(HEADER, flush=True)

        rows: list[Row] = []
        rate = LogRate()
        next_at = time.perf_counter()
        while True:
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
            if not run.alive():
                raise SystemExit(
                    f"rackwatch run exited on its own (code {run.proc.returncode}):\n"
                    + run.output_tail()
                )
            row = sample(run, url, data_dir, launch_ms)
            rate.add(row)
            print_row(row, rows[-1] if rows else None, rate)
            rows.append(row)
            if row.sim_s is not None and row.sim_s >= args.hours * 3600:
                why = f"{args.hours:g} simulated hours covered"
                break
            if row.wall_s >= args.max_wall:
                why = f"--max-wall {args.max_wall:g} s reached"
                break
        _, peak_mib = proc_mib(run.pid)
        run.kill()  # SIGKILL: a crash
        log_at_kill, gens_at_kill = log_files(data_dir)
        db_at_kill = db_bytes(data_dir)
        print(
            f"stopped ({why}); killed with SIGKILL: log {log_at_kill / MIB:.2f} MiB in "
            f"{len(gens_at_kill)} file(s), database {db_at_kill / MIB:.2f} MiB",
            flush=True,
        )
        print(
            f"log method: log bytes / {fmt(rate.bytes_per_sim_s, ',.0f')} B per simulated "
            f"second (= {fmt(rate.bytes_per_sample, '.1f')} B per sample), the log's growth "
            f"over {rate.d_sim / 3600:.2f} simulated h of intervals with no change of "
            "generation",
            flush=True,
        )

        # Restart after the crash: open (replays the log into the head), then close.
        peak_known = reset_self_peak()
        rss_before = self_mib("VmRSS")
        start = time.perf_counter()
        store = DuckDBStore(data_dir / "rackwatch.duckdb", SeriesRegistry())
        replay_s = time.perf_counter() - start
        replay_peak = self_mib("VmHWM")
        head_rows = store.stats().n_head_rows
        start = time.perf_counter()
        store.close()
        close_s = time.perf_counter() - start
        log_after_close, _ = log_files(data_dir)
        print(
            f"replay after the crash: {log_at_kill / MIB:.2f} MiB of log "
            f"({head_rows:,} rows in the head) opened in {replay_s:.2f} s "
            f"(peak RSS of this process {replay_peak:.0f} MiB, {replay_peak - rss_before:+.0f} "
            f"MiB{'' if peak_known else ', VmHWM not reset'}); close {close_s:.2f} s, "
            f"log left {log_after_close / MIB:.2f} MiB",
            flush=True,
        )

        # A clean run: start again, stop with Ctrl-C.
        clean = None
        if args.clean_seconds > 0:
            clean_dir = base / "clean" if args.clean_fresh_dir else data_dir
            run2, launch2 = start_run(args, clean_dir)
            runs.append(run2)
            url2 = run2.wait_url(args.start_timeout)
            startup_s = time.perf_counter() - run2.started
            time.sleep(args.clean_seconds)
            last = sample(run2, url2, clean_dir, launch2)
            rc, stop_s = run2.interrupt(timeout=300)
            log_left, gens_left = log_files(clean_dir)
            stopped = next((ln for ln in reversed(run2.tail) if ln.startswith("stopped:")), "")
            clean = (startup_s, stop_s, rc, log_left)
            print(
                f"clean run ({'fresh' if args.clean_fresh_dir else 'same'} directory): "
                f"serving after {startup_s:.1f} s, ran "
                f"{args.clean_seconds:g} s ({hms(last.sim_s)} simulated, "
                f"{fmt(last.samples, ',d')} samples, RSS {last.rss_mib:.0f} MiB, log "
                f"{last.log_bytes / MIB:.2f} MiB), SIGINT -> exit {rc} in {stop_s:.1f} s; "
                f"log left after the clean stop {log_left / MIB:.3f} MiB in "
                f"{len(gens_left)} file(s), database {db_bytes(clean_dir) / MIB:.2f} MiB"
                + (f"\n  ({stopped})" if stopped else ""),
                flush=True,
            )
            if rc != 0:
                print(run2.output_tail(), flush=True)

        # Summary.
        # Steady state: the second half of the simulated period covered.
        half = (rows[-1].sim_s or 0) / 2
        steady = [r for r in rows if r.sim_s is not None and r.sim_s >= half] or rows
        rss = [r.rss_mib for r in steady]
        biggest = max(rows, key=lambda r: r.log_bytes)
        minutes = rate.minutes(biggest.log_bytes)
        sim_end = rows[-1].sim_s
        print()
        print(
            f"summary, {run.room} at {args.speed:g}x, "
            f"{hms(sim_end)} simulated in {rows[-1].wall_s:.0f} s, "
            f"{fmt(rows[-1].samples, ',d')} samples:"
        )
        print(
            f"  RSS at steady state (second half of the simulated time, {len(steady)} "
            f"samples): median {statistics.median(rss):.0f} MiB, max {max(rss):.0f} MiB; "
            f"peak (VmHWM) {peak_mib:.0f} MiB"
        )
        print(
            f"  log: max {biggest.log_bytes / MIB:.2f} MiB = {fmt(minutes, '.1f')} simulated "
            f"min of data (at {hms(biggest.sim_s)} simulated); "
            f"{log_at_kill / MIB:.2f} MiB at the kill"
        )
        print(
            f"  restart after kill -9: replay {replay_s:.2f} s for "
            f"{log_at_kill / MIB:.2f} MiB of log, close {close_s:.2f} s"
        )
        if clean is not None:
            print(
                f"  clean stop (SIGINT): {clean[1]:.1f} s, exit {clean[2]}, log left "
                f"{clean[3] / MIB:.3f} MiB"
            )
    finally:
        for run in runs:
            run.kill()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the child was killed and the directory removed by then
        sys.exit(130)
