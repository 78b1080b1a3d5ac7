"""Locust load test of one `rackwatch run` (issue 13): producers, consumers, seed 002's shape.

    python bench/locust_run.py [--locustfile all|producers|consumers] [--users 100]
                               [--spawn-rate 10] [--seconds 60] [--scenario very-large]
                               [--shape] [--hour-seconds 60] [--min-users 10] [--max-users 1000]
                               [--class NAME ...] [--read-token] [--bus URL] [--out DIR]

    e.g. python bench/locust_run.py --users 100 --seconds 60          # every user class
         python bench/locust_run.py --shape --hour-seconds 120        # seed 002's hour in 2 min

The server is `rackwatch run --port 0 --data-dir D --scenario S --no-host --mqtt
mqtt://127.0.0.1:1883` (the executable next to this Python) in a fresh data directory, with a
topic prefix and MQTT client id of its own, so the shared broker's other users are not
touched. Tokens are made as an admin makes them (`rackwatch token create --scope ingest`,
and `--scope read` with `--read-token`; without it the readers read from loopback without
one, as the local dashboard does). Then `locust --headless` runs `bench/locust/<file>.py`
(with `bench/locust/shapes.py` for `--shape`: 10 → 1,000 → 10 users per "hour", the hour
lasting `--hour-seconds`), its stats in `--out` (CSV and JSON).

Prints per request and per user class: requests/s, p50/p95/p99/max (for WebSocket
`monitoring_data`: the lag, receipt minus the sample instant), failures; for `--shape`, the
users and throughput along the curve; and the server's side: samples received per second
(all sources), CPU (share of one core) and peak RSS over the test, WebSocket and bus drops.
Locust runs in its own process (it monkey-patches with gevent); on a small machine it shares
the cores with the server, so its CPU is printed too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOCUST_DIR = HERE / "locust"
BROKER = ("127.0.0.1", 1883)
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Which user class made a request: (request type, page prefix of its name).
CLASS_OF = {
    ("POST", ""): "IngestAgent",
    ("MQTT", ""): "MqttSensor",
    ("GET", "overview"): "OverviewReader",
    ("GET", "server"): "ServerPageReader",
    ("WS", "overview"): "OverviewStream",
    ("WS", "server"): "ServerPageStream",
}
PRODUCERS = ("IngestAgent", "MqttSensor")


def executable(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def broker_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(BROKER) == 0


# ------------------------------------------------------------------------------ the server


class Server:
    """`rackwatch run` as a child process, its output in a log file."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, run_id: str) -> None:
        exe = executable("rackwatch")
        if exe is None:
            raise SystemExit("rackwatch is not installed next to this Python")
        self.exe, self.data_dir = exe, data_dir
        command = [exe, "run", "--port", "0", "--data-dir", str(data_dir), "--no-host"]
        command += ["--scenario", args.scenario]
        self.env = dict(os.environ)
        self.mqtt_prefix = f"locust-{run_id}"
        if args.mqtt:
            command += ["--mqtt", f"mqtt://{BROKER[0]}:{BROKER[1]}"]
            self.env["RACKWATCH_MQTT__PREFIX"] = self.mqtt_prefix
            self.env["RACKWATCH_MQTT__CLIENT_ID"] = f"rackwatch-{self.mqtt_prefix}"
        if args.bus:
            command += ["--bus", args.bus]
            self.env["RACKWATCH_BUS__PREFIX"] = f"locust_{run_id}"
        self.log = (data_dir.parent / "rackwatch-run.log").open("w")
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**self.env, "COLUMNS": "120"},
            start_new_session=True,
        )

    def tail(self, n: int = 20) -> str:
        self.log.flush()
        lines = Path(self.log.name).read_text(errors="replace").splitlines()[-n:]
        return "\n".join("  | " + line for line in lines) or "  (no output)"

    def wait_url(self, timeout: float) -> str:
        """The run's URL, from the `server.json` it writes once it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                url: str = json.loads((self.data_dir / "server.json").read_text())["url"]
                return url.rstrip("/")
            time.sleep(0.2)
        self.stop()
        raise SystemExit("rackwatch run did not start:\n" + self.tail())

    def token(self, scope: str) -> str:
        """A token made with the CLI, as an admin makes one; its secret is the last line."""
        command = [self.exe, "token", "create", "--scope", scope, "--name", f"locust-{scope}"]
        out = subprocess.run(
            [*command, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env={**self.env, "COLUMNS": "400"},
            check=True,
        ).stdout
        return out.strip().splitlines()[-1].strip()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS_PER_S

    def rss_mib(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return math.nan

    def stop(self) -> int | None:
        """SIGINT, as Ctrl-C; killed after a minute."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc: int | None = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return rc


def clear_retained(prefix: str, wait_s: float = 3.0) -> int:
    """Clear the retained messages left under this run's own MQTT prefix (a device user that
    was killed before its goodbye); how many. The shared broker keeps nothing of the test."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topics: set[str] = set()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-cleanup")
    client.on_message = lambda _c, _u, msg: topics.add(msg.topic) if msg.retain else None
    try:
        client.connect(*BROKER)
    except OSError:
        return 0
    client.loop_start()
    client.subscribe(f"{prefix}/#", qos=1)
    time.sleep(wait_s)  # retained messages arrive at once after the subscription
    for topic in sorted(topics):
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    return len(topics)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def metric_total(url: str, name: str) -> float:
    """One counter of /metrics (summed over its labels)."""
    total, found = 0.0, False
    with urllib.request.urlopen(url + "/metrics", timeout=60) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
    return total if found else math.nan


# ------------------------------------------------------------------------------ figures


def percentile(histogram: dict[float, int], q: float) -> float:
    """The q-quantile of Locust's response-time histogram (ms -> count)."""
    n = sum(histogram.values())
    if n == 0:
        return math.nan
    rank, seen = q * n, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def class_of(method: str, name: str) -> str:
    page = name.split(" ", 1)[0] if method in ("GET", "WS") else ""
    return CLASS_OF.get((method, page), f"{method} {page}".strip())


def figures_table(
    rows: list[tuple[str, dict[float, int], int, int, int]], seconds: float
) -> list[str]:
    """Rows of (label, histogram, requests, failures, bytes) as aligned text."""
    out = [
        f"{'':44} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'requests':>9} {'fails':>6}"
    ]
    for label, hist, n, fails, _size in rows:
        p50, p95, p99 = (percentile(hist, q) for q in (0.5, 0.95, 0.99))
        worst = max(hist) if hist else math.nan
        out.append(
            f"{label[:44]:44} {n / seconds:8.1f} {p50:8.0f} {p95:8.0f} {p99:8.0f} {worst:8.0f} "
            f"{n:9,} {fails:6,}"
        )
    return out


def report_stats(stats: list[dict[str, Any]], seconds: float) -> tuple[int, int]:
    """Print per request and per user class; (requests, failures) in all."""
    by_request = []
    by_class: dict[str, list[Any]] = collections.defaultdict(
        lambda: [collections.Counter(), 0, 0, 0]
    )
    for entry in sorted(stats, key=lambda e: (class_of(e["method"], e["name"]), e["name"])):
        hist = {float(k): int(v) for k, v in entry["response_times"].items()}
        n, fails = entry["num_requests"], entry["num_failures"]
        size = entry["total_content_length"]
        by_request.append((f"{entry['method']} {entry['name']}", hist, n, fails, size))
        agg = by_class[class_of(entry["method"], entry["name"])]
        agg[0].update(hist)
        agg[1] += n
        agg[2] += fails
        agg[3] += size
    print("\nper request (WS monitoring_data: lag = receipt - ts_ms)")
    print("\n".join(figures_table(by_request, seconds)))
    print("\nper user class")
    rows = [(name, dict(a[0]), a[1], a[2], a[3]) for name, a in sorted(by_class.items())]
    print("\n".join(figures_table(rows, seconds)))
    return sum(r[2] for r in by_request), sum(r[3] for r in by_request)


def report_history(history_csv: Path, points: int = 12) -> None:
    """The users and throughput along the test (the shape), from Locust's per-second CSV."""
    if not history_csv.exists():
        return
    with history_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    if len(rows) < 2:
        return
    t0 = int(rows[0]["Timestamp"])
    step = max(1, len(rows) // points)
    print("\nalong the test (Locust's last-10-s window; all requests)")
    print(f"{'t s':>6} {'users':>6} {'req/s':>8} {'fail/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for r in [*rows[::step], rows[-1]] if (len(rows) - 1) % step else rows[::step]:
        print(
            f"{int(r['Timestamp']) - t0:6d} {int(r['User Count']):6d} "
            f"{float(r['Requests/s']):8.1f} {float(r['Failures/s']):7.1f} "
            f"{r['50%']:>8} {r['95%']:>8}"
        )


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locustfile", choices=("all", "producers", "consumers"), default="all")
    parser.add_argument("--users", type=int, default=100, help="peak users (not with --shape)")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per s")
    parser.add_argument("--seconds", type=float, default=60.0, help="test length (-t)")
    parser.add_argument("--scenario", default="very-large")
    parser.add_argument("--shape", action="store_true", help="seed 002's 10 → 1,000 → 10 curve")
    parser.add_argument("--hour-seconds", type=float, default=60.0, help="the shape's hour")
    parser.add_argument("--min-users", type=int, default=10)
    parser.add_argument("--max-users", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=1, help="shape hours to run")
    parser.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME")
    parser.add_argument("--read-token", action="store_true", help="readers send a read token")
    parser.add_argument("--bus", help="rackwatch run --bus URL (e.g. nats://127.0.0.1:4222)")
    parser.add_argument("--interval", type=float, default=5.0, help="producers' period, s")
    parser.add_argument("--readings", type=int, default=50, help="readings per agent push")
    parser.add_argument(
        "--max-server-rss-mib",
        type=int,
        default=4096,
        help="kill the server above this RSS, to keep the machine's memory",
    )
    parser.add_argument(
        "--settle", type=float, default=5.0, help="s watching the server after Locust ends"
    )
    parser.add_argument("--out", type=Path, help="keep Locust's CSV/JSON and the server log")
    args = parser.parse_args()
    for name, value in (("--users", args.users), ("--max-users", args.max_users)):
        if not 1 <= value <= 100_000:
            parser.error(f"{name}: use 1 to 100,000")
    if not (0 < args.seconds <= 86_400 and 0 < args.spawn_rate <= 10_000):
        parser.error("--seconds: 0 to 86,400; --spawn-rate: 0 to 10,000")
    if not 10 <= args.hour_seconds <= 7 * 86_400 or not 0 <= args.min_users <= args.max_users:
        parser.error("--hour-seconds: 10 s to a week; --min-users: 0 to --max-users")

    locust = executable("locust")
    if locust is None:
        raise SystemExit("locust is not installed: pip install 'locust>=2.40'")
    files = ["producers", "consumers"] if args.locustfile == "all" else [args.locustfile]
    classes = args.classes
    producing = args.locustfile != "consumers"
    wants_mqtt = producing and (not classes or "MqttSensor" in classes)
    if wants_mqtt and not broker_up():
        if classes:
            raise SystemExit("MqttSensor needs Mosquitto on 127.0.0.1:1883")
        print("no MQTT broker on 127.0.0.1:1883: MqttSensor left out")
        wants_mqtt = False
        classes = ["IngestAgent"]
        if args.locustfile == "all":
            classes += ["OverviewReader", "ServerPageReader", "OverviewStream", "ServerPageStream"]
    args.mqtt = wants_mqtt

    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="locust-run-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        data_dir = Path(tmp) / "data"
        server = Server(args, data_dir, run_id)
        try:
            run_test(args, locust, files, classes, server, out, run_id)
        finally:
            rc = server.stop()
            if args.mqtt and (n := clear_retained(server.mqtt_prefix)):
                print(f"cleared {n} retained MQTT messages left under {server.mqtt_prefix}/")
            if args.out is not None:
                shutil.copy(server.log.name, out / "rackwatch-run.log")
            print(f"rackwatch run stopped (SIGINT), exit {rc}")


def run_test(
    args: argparse.Namespace,
    locust: str,
    files: list[str],
    classes: list[str],
    server: Server,
    out: Path,
    run_id: str,
) -> None:
    url = server.wait_url(120)
    env = {
        **os.environ,
        "RACKWATCH_LOCUST_RUN_ID": run_id,
        "RACKWATCH_LOCUST_INTERVAL_S": str(args.interval),
        "RACKWATCH_LOCUST_READINGS": str(args.readings),
        "RACKWATCH_LOCUST_MQTT": f"mqtt://{BROKER[0]}:{BROKER[1]}",
        "RACKWATCH_LOCUST_MQTT_PREFIX": server.mqtt_prefix,
        "RACKWATCH_LOCUST_HOUR_SECONDS": str(args.hour_seconds),
        "RACKWATCH_LOCUST_MIN_USERS": str(args.min_users),
        "RACKWATCH_LOCUST_MAX_USERS": str(args.max_users),
        "RACKWATCH_LOCUST_CYCLES": str(args.cycles),
    }
    if "producers" in files:
        env["RACKWATCH_LOCUST_INGEST_TOKEN"] = server.token("ingest")
    if args.read_token:
        env["RACKWATCH_LOCUST_READ_TOKEN"] = server.token("read")
    paths = [str(LOCUST_DIR / f"{f}.py") for f in files]
    if args.shape:
        paths.append(str(LOCUST_DIR / "shapes.py"))
    command = [locust, "-f", ",".join(paths), "--headless", "--host", url, "--only-summary"]
    command += ["--csv", str(out / "locust"), "--json-file", str(out / "locust")]
    command += ["--stop-timeout", "10", "--loglevel", "WARNING"]
    if args.shape:
        seconds = args.cycles * args.hour_seconds
    else:
        seconds = args.seconds
        command += ["-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{seconds:g}s"]
    command += classes

    shape = (
        f"seed 002's shape {args.min_users} → {args.max_users} → {args.min_users} users, "
        f"an hour = {args.hour_seconds:g} s, {args.cycles} cycle(s)"
        if args.shape
        else f"{args.users} users started at {args.spawn_rate:g}/s, {seconds:g} s"
    )
    print(
        f"rackwatch run --scenario {args.scenario} --no-host"
        + (" --mqtt (own prefix)" if args.mqtt else "")
        + (f" --bus {args.bus}" if args.bus else "")
        + f" at {url}; locust -f {','.join(Path(p).name for p in paths)}"
        + (f" {' '.join(classes)}" if classes else "")
        + f"; {shape}; producers every {args.interval:g} s, {args.readings} readings per push"
        + ("; readers with a read token" if args.read_token else "; reads from loopback")
    )
    print("$ " + " ".join(command).replace(url, "URL"))

    before = get_json(url + "/api/v1/status")
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    log_file = (out / "locust.log").open("w")
    rss_log = (out / "server_rss.csv").open("w")  # s since the start, MiB
    rss_log.write("t_s,rss_mib\n")
    proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    rss_peak = 0.0
    deadline = time.monotonic() + seconds + 60  # its users' stop included
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            rss = server.rss_mib()
            rss_log.write(f"{time.monotonic() - wall0:.1f},{rss:.0f}\n")
            rss_peak = max(rss_peak, rss)
            if rss_peak > args.max_server_rss_mib:
                server.proc.kill()  # before it takes the machine's memory (it has, OOM)
                raise SystemExit(
                    f"rackwatch run's RSS reached {rss_peak:,.0f} MiB, above "
                    f"--max-server-rss-mib {args.max_server_rss_mib:,}: killed; its log:\n"
                    + server.tail()
                )
            time.sleep(0.5)
    finally:
        if proc.poll() is None:  # stuck, or this script interrupted: SIGINT, as Ctrl-C
            print("locust interrupted")
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()
        rss_log.close()
    wall = time.monotonic() - wall0
    cpu = (server.cpu_s() - cpu0) / wall
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (
        children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    ) / wall
    after = get_json(url + "/api/v1/status")
    settle_until = time.monotonic() + args.settle  # the server after the users have gone
    while time.monotonic() < settle_until and server.proc.poll() is None:
        rss_peak = max(rss_peak, server.rss_mib())
        time.sleep(0.5)
    log = (out / "locust.log").read_text(errors="replace")

    stats_file = out / "locust.json"
    if not stats_file.exists():
        raise SystemExit(f"locust wrote no stats (exit {proc.returncode}):\n{log[-3000:]}")
    stats = json.loads(stats_file.read_text())
    n, fails = report_stats(stats, seconds)
    if args.shape:
        report_history(out / "locust_stats_history.csv")
    failures_csv = out / "locust_failures.csv"
    if fails and failures_csv.exists():
        print("\nfailures")
        with failures_csv.open() as f:
            for row in list(csv.DictReader(f))[:10]:
                print(
                    f"  {row['Method']} {row['Name']}: {row['Error'][:150]} x{row['Occurrences']}"
                )
    received = (after["samples_total"] - before["samples_total"]) / wall
    ws_dropped = metric_total(url, "rackwatch_ws_dropped_messages_total")
    bus_dropped = metric_total(url, "rackwatch_bus_dropped_messages_total")
    print(
        f"\nserver: received {received:,.0f} samples/s (all sources: twin, agents, MQTT); CPU "
        f"{cpu:.0%} of one core; RSS peak {rss_peak:,.0f} MiB; WebSocket messages dropped "
        f"{ws_dropped:,.0f}, bus drops {bus_dropped:,.0f} (whole run). locust: CPU "
        f"{locust_cpu:.0%} of one core; exit {proc.returncode}"
    )
    print(
        f"RESULT: {n / seconds:,.1f} requests/s over {seconds:g} s, {n:,} requests, "
        f"{fails:,} failures ({fails / max(1, n):.2%})"
    )


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the server and Locust are stopped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        main()
