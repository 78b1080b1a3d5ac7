"""Where a running `rackwatch run` serves, recorded in its data directory (`server.json`), so
that other commands on the same data directory can reach it while it holds the store.

The file is `{"url", "pid", "version", "started_at"}`, private (mode 0600), written once the
server answers and removed when the run stops. A file whose process is gone (a run that was
killed) is stale and ignored.

>>> import tempfile, pathlib
>>> where = pathlib.Path(tempfile.mkdtemp())
>>> _ = record(where, "http://0.0.0.0:8000/")
>>> find(where).url  # a wildcard address is reached on loopback
'http://127.0.0.1:8000/'
>>> discard(where); find(where) is None
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rackwatch import __version__

log = logging.getLogger(__name__)

SERVER_FILE = "server.json"

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """A running server: the URL to reach it at (wildcard addresses mapped to loopback) and
    its process id."""

    url: str
    pid: int
    path: Path


def record(data_dir: Path, url: str) -> Path:
    """Write `data_dir/server.json` for this process serving at `url` (atomically, 0600)."""
    path = data_dir / SERVER_FILE
    body = {
        "url": url,
        "pid": os.getpid(),
        "version": __version__,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = data_dir / f".{SERVER_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(body, out)
        out.write("\n")
    os.replace(tmp, path)
    return path


def discard(data_dir: Path) -> None:
    """Remove `data_dir/server.json` if this process wrote it (never another run's)."""
    path = data_dir / SERVER_FILE
    found = _read(path)
    if found is not None and found[1] == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def find(data_dir: Path) -> ServerRecord | None:
    """The server recorded in `data_dir`, if its process is alive; None when there is no
    file, it is not one we wrote, or its process is gone."""
    path = data_dir / SERVER_FILE
    found = _read(path)
    if found is None:
        return None
    url, pid = found
    if not pid_alive(pid):
        log.debug("ignoring %s: process %d is gone", path, pid)
        return None
    return ServerRecord(url=_reachable(url), pid=pid, path=path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> tuple[str, int] | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return None
    if not isinstance(body, dict):
        return None
    url, pid = body.get("url"), body.get("pid")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    return url, pid


def _reachable(url: str) -> str:
    """The URL with a wildcard listening address (0.0.0.0, ::) replaced by loopback."""
    parts = urlsplit(url)
    host, sep, port = parts.netloc.rpartition(":")
    if not sep or host not in _WILDCARDS:
        return url
    return urlunsplit(parts._replace(netloc=f"{_WILDCARDS[host]}:{port}"))
