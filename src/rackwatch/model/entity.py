"""Entity paths: the path is the hierarchy, e.g. `c01/r02/s07/fan1` (cluster/rack/server/part).

>>> parent("c01/r02/s07/fan1")
'c01/r02/s07'
>>> matches("c01/r02/s07/fan1", "c01/*/s07/*")
True
>>> matches("c01/r02/s07", "c01/**")
True
"""

from __future__ import annotations

import fnmatch
import re

_SEGMENT = re.compile(r"^[A-Za-z0-9_.:-]+$")


def validate(path: str) -> str:
    """Return `path` if every segment is a plain name, else raise ValueError saying why."""
    if not path:
        raise ValueError("an entity path cannot be empty")
    for segment in path.split("/"):
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"bad entity path {path!r}: segment {segment!r} must be letters, digits or _.:-"
            )
    return path


def parent(path: str) -> str | None:
    head, sep, _ = path.rpartition("/")
    return head if sep else None


def depth(path: str) -> int:
    return path.count("/") + 1


def matches(path: str, pattern: str) -> bool:
    """Glob match by segment: `*` is one segment, `**` any number (also zero) of segments."""
    return _match(path.split("/"), pattern.split("/"))


def _match(segments: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not segments
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(segments[i:], rest) for i in range(len(segments) + 1))
    return bool(segments) and fnmatch.fnmatchcase(segments[0], head) and _match(segments[1:], rest)
