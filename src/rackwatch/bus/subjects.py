"""Subject names. Dotted, NATS-style: `*` matches one token, `>` the rest.

>>> subject_matches("telemetry.twin", "telemetry.>")
True
>>> subject_matches("events.fault", "events.*")
True
>>> subject_matches("commands.c01", "events.>")
False
"""

from __future__ import annotations

TELEMETRY = "telemetry"
EVENTS = "events"
COMMANDS = "commands"


def telemetry(source: str) -> str:
    return f"{TELEMETRY}.{source}"


def events(kind: str) -> str:
    return f"{EVENTS}.{kind}"


def commands(source: str) -> str:
    return f"{COMMANDS}.{source}"


def subject_matches(subject: str, pattern: str) -> bool:
    tokens, wanted = subject.split("."), pattern.split(".")
    for i, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > i
        if i >= len(tokens) or (want != "*" and want != tokens[i]):
            return False
    return len(tokens) == len(wanted)
