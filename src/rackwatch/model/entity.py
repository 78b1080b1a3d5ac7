"""Entity paths: the path is the hierarchy, e.g. `c01/r02/s07/fan1` (cluster/rack/server/part).

>>> parent("c01/r02/s07/fan1")
'c01/r02/s07'
>>> matches("c01/r02/s07/fan1", "c01/*/s07/*")
True
>>> matches("c01/r02/s07", "c01/**")
True

An entity glob is matched segment by segment: `*` is one segment, `**` any number of
segments (also none, so `c01/r02/s07/**` holds `c01/r02/s07` itself), `?` one character and
`[...]` one of a set inside a segment. A pattern is compiled once (`compile_pattern`, a
bounded cache) into an automaton whose states are the pattern's segments; matching a path
walks it once, so it costs O(len(path) x len(pattern)) at worst, whatever the pattern.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Container, Iterator

_SEGMENT = re.compile(r"^[A-Za-z0-9_.:-]+$")

ANY_DEPTH = "**"
"""The segment that matches any number of segments, also none."""
MAX_PATTERN_LENGTH = 256
"""Entity globs from users are refused above these (the API's 400); they bound the work of
one match, which is linear in the pattern anyway."""
MAX_PATTERN_SEGMENTS = 16
MAX_PATTERN_ANY_DEPTH = 4
_WILDCARDS = re.compile(r"[*?\[]")
_MEMO_SIZE = 1024
"""Segment results kept per compiled pattern (cleared when full)."""


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


def ancestors(path: str) -> Iterator[str]:
    """The parent, its parent, and so on up to the root.

    >>> list(ancestors("c01/r01/s01"))
    ['c01/r01', 'c01']
    """
    up = parent(path)
    while up is not None:
        yield up
        up = parent(up)


def nearest_known_parent(path: str, known: Container[str]) -> str | None:
    """The closest ancestor of `path` that is in `known` (None: none is): the tree's parent
    link when some levels are not entities of their own (a rack without a record).

    >>> nearest_known_parent("c01/r01/s01", {"c01"})
    'c01'
    """
    return next((up for up in ancestors(path) if up in known), None)


def depth(path: str) -> int:
    return path.count("/") + 1


def is_glob(pattern: str) -> bool:
    """Whether `pattern` has a wildcard (else it names one entity).

    >>> is_glob("c01/r01/s01"), is_glob("c01/*"), is_glob("s0[12]")
    (False, True, True)
    """
    return _WILDCARDS.search(pattern) is not None


def matches(path: str, pattern: str) -> bool:
    """Glob match by segment: `*` is one segment, `**` any number (also zero) of segments.

    Compiles `pattern` once (cached), then costs O(len(path) x len(pattern)) at worst.

    >>> matches("c01/r01/s01", "c01/r01/s01/**"), matches("c01/r01/s01/fan1", "**/**/fan?")
    (True, True)
    >>> matches("c01/r01/s01/fan1", "/".join(["**"] * 40 + ["x"]))
    False
    """
    return compile_pattern(pattern).match(path)


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> EntityPattern:
    """The compiled form of an entity glob, cached (the 256 most recently used)."""
    return EntityPattern(pattern)


class EntityPattern:
    """An entity glob compiled to an automaton over segments.

    State `i` means "the path so far matched the pattern's first `i` segments"; the states
    reached are a bit set (an int), so one path segment advances every state at once:
    a `**` state stays (it takes the segment), any other state advances if its segment glob
    matches, and a state before a `**` also stands after it (`**` takes none). Runs of `**`
    are merged (`**/**` is `**`). Each path segment is tested against each pattern segment
    at most once (`segment_mask`, memoised), each test is a regex without backtracking
    blow-up (`fnmatch.translate` makes every `*` but the last an atomic group), so a match
    costs O(len(path) x len(pattern)). Plain names, `**` and `<name>/**` skip the automaton.

    >>> p = compile_pattern("c01/**/fan?")
    >>> p.segments, p.match("c01/fan1"), p.match("c01/r01/s01/fan2"), p.match("c02/r01/fan1")
    (('c01', '**', 'fan?'), True, True, False)
    >>> bin(p.segment_mask("fan1")), p.n_states
    ('0b100', 4)
    """

    __slots__ = (
        "_memo",
        "_prefix",
        "_tests",
        "accept",
        "any_depth",
        "n_states",
        "pattern",
        "segments",
        "start",
    )

    def __init__(self, pattern: str) -> None:
        segments: list[str] = []
        for segment in pattern.split("/"):
            if not (segment == ANY_DEPTH and segments and segments[-1] == ANY_DEPTH):
                segments.append(segment)
        self.pattern = pattern
        self.segments = tuple(segments)
        self.n_states = len(segments) + 1
        self.any_depth = sum(1 << i for i, s in enumerate(segments) if s == ANY_DEPTH)  # bits
        self.start = self.close(1)
        self.accept = 1 << len(segments)
        self._tests: list[tuple[int, str | None, re.Pattern[str] | None]] = [
            (1 << i, None, re.compile(fnmatch.translate(s))) if is_glob(s) else (1 << i, s, None)
            for i, s in enumerate(segments)
            if s != ANY_DEPTH
        ]
        self._memo: dict[str, int] = {}
        # a plain name (`c01/r01`) or everything under one (`c01/**`) is a string comparison
        self._prefix: str | None = None
        if not is_glob(pattern):
            self._prefix = pattern
        elif len(segments) > 1 and segments[-1] == ANY_DEPTH:
            head = "/".join(segments[:-1])
            if not is_glob(head):
                self._prefix = head

    def close(self, states: int) -> int:
        """`states` and those reached from them by a `**` taking no segment."""
        return states | ((states & self.any_depth) << 1)

    def segment_mask(self, segment: str) -> int:
        """The states (bits) whose pattern segment, other than `**`, matches `segment`."""
        found = self._memo.get(segment)
        if found is None:
            found = 0
            for bit, literal, regex in self._tests:
                if segment == literal if regex is None else regex.match(segment):
                    found |= bit
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[segment] = found
        return found

    def step(self, states: int, segment: str) -> int:
        """The states after one more path segment."""
        taken = (states & self.segment_mask(segment)) << 1
        return self.close((states & self.any_depth) | taken)

    def match(self, path: str) -> bool:
        prefix = self._prefix
        if prefix is not None:
            if prefix == self.pattern:
                return path == prefix
            return path == prefix or path.startswith(prefix + "/")
        if self.segments == (ANY_DEPTH,):
            return True
        states = self.start
        for segment in path.split("/"):
            states = self.step(states, segment)
            if not states:
                return False
        return bool(states & self.accept)

    def __repr__(self) -> str:
        return f"EntityPattern({self.pattern!r})"
