"""How the stored inventory merges a declaration with what sources discover (`overlay`):
the configuration's attributes win, and a source's differing value is kept aside.

A record written by the configuration (`engine/inventory.py`) lists the attribute names it
owns under `declared`. Writing a record over it that has no such list (an agent's host, a
PDU's outlets, the twin's servers) keeps the declared attributes and kind, takes the others,
and files a value that differs from a declared one under `discovered`, for the report of
disagreements. Writing a declaration replaces the declared part and keeps the discovered one.

>>> declared = EntityRecord("host/a", "machine", {"owner": "ml", DECLARED: ["owner"]})
>>> found = EntityRecord("host/a", "host", {"owner": "ops", "cpu_model": "EPYC"})
>>> overlay(declared, found)  # doctest: +NORMALIZE_WHITESPACE
EntityRecord(path='host/a', kind='machine',
             attributes={'owner': 'ml', 'declared': ['owner'], 'cpu_model': 'EPYC',
                         'discovered': {'owner': 'ops'}})
"""

from __future__ import annotations

from rackwatch.store.base import EntityRecord

DECLARED = "declared"
"""Attribute listing the names the configuration owns (absent: a discovered entry)."""
DISCOVERED = "discovered"
"""Attribute holding what a source reported for a declared name, when it differs."""


def overlay(existing: EntityRecord | None, incoming: EntityRecord) -> EntityRecord:
    """What the store keeps when `incoming` is written over `existing`: a declaration
    replaces the declared part and keeps what was discovered; a discovery keeps the declared
    part (and kind) and files a value that differs from a declared one under `discovered`."""
    old = dict(existing.attributes) if existing is not None else {}
    new = dict(incoming.attributes)
    if DECLARED in new:  # a declaration
        owned_before = set(old.get(DECLARED, ()))
        base = {k: v for k, v in old.items() if k not in owned_before and k != DISCOVERED}
        found = dict(old.get(DISCOVERED, {}))
        for key in owned_before:
            if key in found and key not in new:
                base[key] = found.pop(key)  # no longer declared: what was found shows again
        merged = {**base, **new}
        if found:
            merged[DISCOVERED] = {k: v for k, v in found.items() if k in new}
            if not merged[DISCOVERED]:
                del merged[DISCOVERED]
        return EntityRecord(incoming.path, incoming.kind, merged)
    owned = set(old.get(DECLARED, ()))
    if not owned:
        return incoming
    merged = {k: v for k, v in old.items() if k in owned or k in (DECLARED, DISCOVERED)}
    found = dict(old.get(DISCOVERED, {}))
    for key, value in new.items():
        if key in owned:
            if value != old.get(key):
                found[key] = value
            else:
                found.pop(key, None)
        else:
            merged[key] = value
    if found:
        merged[DISCOVERED] = found
    else:
        merged.pop(DISCOVERED, None)
    return EntityRecord(incoming.path, existing.kind if existing else incoming.kind, merged)
