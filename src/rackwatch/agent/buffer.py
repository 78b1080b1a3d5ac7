"""The agent's disk buffer: every collection is written here before it is pushed.

Collections are JSON lines in segment files (`<first seq>.jsonl`, about 1 MiB each), each
with a sequence number; `acked` holds the newest number the server took. Pushing reads the
oldest unacknowledged lines in order, and a push the server took moves `acked` forward and
deletes the segments wholly behind it. So a server that is down, an agent that is stopped or
killed, and a push whose answer was lost all end the same way: what was not acknowledged is
sent again, in order, and the server's store keeps one value per series and instant.

The buffer is bounded (`max_bytes`, 64 MiB by default: days of one host's collections): past
it the oldest segment goes, and its collections are counted in `n_dropped`. A line torn by a
crash mid-write, or otherwise unreadable, is skipped and counted (`n_corrupt`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ACKED_FILE = "acked"
SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Pending:
    """The oldest unacknowledged collections: `entries` in order, the last one's `seq`."""

    entries: list[dict[str, Any]]
    last_seq: int


class DiskBuffer:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 64 * 2**20,
        segment_bytes: int = 2**20,
    ) -> None:
        if segment_bytes < 1024 or max_bytes < 2 * segment_bytes:
            raise ValueError("the buffer needs segment_bytes >= 1 KiB and max_bytes >= 2 segments")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.n_dropped = 0
        self.n_corrupt = 0
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.acked = self._read_acked()
        segments = self._segments()
        if segments:
            self._cut_torn_tail(segments[-1])
        self.next_seq = max(self.acked + 1, self._last_seq(segments[-1]) + 1 if segments else 0)

    # ------------------------------------------------------------------ writing

    def append(self, entry: dict[str, Any]) -> int:
        """Write one collection (a JSON-friendly dict) and return its sequence number."""
        seq = self.next_seq
        line = json.dumps({"seq": seq, **entry}, separators=(",", ":")) + "\n"
        segments = self._segments()
        path = segments[-1] if segments else None
        if path is None or path.stat().st_size + len(line) > self.segment_bytes:
            path = self.directory / f"{seq:016d}{SUFFIX}"
        with path.open("a", encoding="utf-8") as out:
            out.write(line)
        self.next_seq = seq + 1
        self._bound()
        return seq

    def _bound(self) -> None:
        """Drop the oldest segments while the buffer is over `max_bytes` (the newest stays)."""
        segments = self._segments()
        total = sum(p.stat().st_size for p in segments)
        while total > self.max_bytes and len(segments) > 1:
            oldest = segments.pop(0)
            size = oldest.stat().st_size
            lost = sum(1 for e in self._read(oldest) if e["seq"] > self.acked)
            oldest.unlink()
            total -= size
            self.n_dropped += lost
            if lost:
                log.warning(
                    "agent buffer over %d MiB: dropped the %d oldest collections",
                    self.max_bytes // 2**20,
                    lost,
                )

    # ------------------------------------------------------------------ reading

    def pending(self, max_entries: int, max_readings: int) -> Pending | None:
        """The oldest unacknowledged collections, at most `max_entries` and (after the first)
        at most `max_readings` readings in all; None when everything was acknowledged."""
        entries: list[dict[str, Any]] = []
        readings = 0
        for path in self._segments():
            for entry in self._read(path):
                if entry["seq"] <= self.acked:
                    continue
                n = sum(len(metrics) for metrics in entry.get("entities", {}).values())
                if entries and (len(entries) >= max_entries or readings + n > max_readings):
                    return Pending(entries, entries[-1]["seq"])
                entries.append(entry)
                readings += n
        return Pending(entries, entries[-1]["seq"]) if entries else None

    def ack(self, seq: int) -> None:
        """The server took every collection up to `seq`: remember it, delete what is behind."""
        if seq <= self.acked:
            return
        self.acked = seq
        tmp = self.directory / f"{ACKED_FILE}.tmp"
        tmp.write_text(str(seq))
        os.replace(tmp, self.directory / ACKED_FILE)
        segments = self._segments()
        for path, following in itertools.pairwise(segments):
            if int(following.stem) - 1 <= seq:  # every line of `path` is <= seq
                path.unlink()

    @property
    def n_pending(self) -> int:
        """Collections written and not acknowledged (the oldest segment's first number on:
        segments are contiguous, and those dropped are gone)."""
        segments = self._segments()
        if not segments:
            return 0
        first = max(self.acked + 1, int(segments[0].stem))
        return max(0, self.next_seq - first)

    # ------------------------------------------------------------------ files

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit())

    def _read(self, path: Path) -> list[dict[str, Any]]:
        entries = []
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                    raise ValueError("no sequence number")
            except ValueError:
                self.n_corrupt += 1
                continue
            entries.append(entry)
        return entries

    def _cut_torn_tail(self, path: Path) -> None:
        """Remove a last line a crash left without its end, so the next line starts clean."""
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.n_corrupt += 1
            with path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def _last_seq(self, path: Path) -> int:
        entries = self._read(path)
        return entries[-1]["seq"] if entries else int(path.stem) - 1

    def _read_acked(self) -> int:
        try:
            return int((self.directory / ACKED_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return -1
