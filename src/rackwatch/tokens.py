"""API tokens: created by `rackwatch token create --scope ...`, stored hashed in the data
directory (`tokens.json`, mode 0600). A token is shown once, at creation; only its SHA-256 is
kept (tokens are 32 random bytes, so a plain hash is as strong as a slow one here).

Scopes: `read` (GET routes, WebSocket), `ingest` (pushing telemetry of real machines to
`POST /api/v1/ingest`, nothing else: an agent's token) and `control` (every route).

>>> import tempfile, pathlib
>>> store = TokenStore(pathlib.Path(tempfile.mkdtemp()) / "tokens.json")
>>> secret, info = store.create("control", name="ops")
>>> store.verify(secret).scope, store.verify("rw_nope") is None
('control', True)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from rackwatch.errors import ConfigError

SCOPES = ("read", "control", "ingest")
PREFIX = "rw_"
TOKENS_FILE = "tokens.json"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    """Public handle (first characters of the hash) to list and revoke a token."""
    name: str
    scope: str
    created_at: str

    def allows(self, scope: str) -> bool:
        return self.scope == "control" or self.scope == scope

    @property
    def label(self) -> str:
        """Who this token is, for people and records: `ops (token c8c734d04242)`."""
        return token_label(self.id, self.name)


MAX_LABEL_NAME = 64
"""A token's name in a label is cut to this many characters (names are free text)."""
LEGACY_BY = re.compile(r"^token:([0-9a-f]{12})$")
"""How records named a token before they carried its name: `token:<id>`."""


def token_label(token_id: str, name: str) -> str:
    """`<name> (token <id>)`: the name people gave it, and the public id that stays unique
    (`rackwatch token list`, `revoke`); `token <id>` when it has no name. Control characters
    are dropped and the name is cut to `MAX_LABEL_NAME` characters, so a label stays one short
    line in events and logs.

    >>> token_label("c8c734d04242", "ops"), token_label("c8c734d04242", "  ")
    ('ops (token c8c734d04242)', 'token c8c734d04242')
    """
    shown = "".join(ch for ch in name if ch.isprintable()).strip()
    if len(shown) > MAX_LABEL_NAME:
        shown = shown[: MAX_LABEL_NAME - 1].rstrip() + "…"
    return f"{shown} (token {token_id})" if shown else f"token {token_id}"


def relabel(by: str, names: Mapping[str, str]) -> str:
    """A `by` recorded as `token:<id>` (before records carried names) as the token's label
    when `names` (id -> name, `TokenStore.names()`) knows it; anything else unchanged.

    >>> relabel("token:c8c734d04242", {"c8c734d04242": "ops"}), relabel("controller", {})
    ('ops (token c8c734d04242)', 'controller')
    """
    found = LEGACY_BY.match(by)
    if found is None or found.group(1) not in names:
        return by
    return token_label(found.group(1), names[found.group(1)])


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def create(self, scope: str, name: str = "") -> tuple[str, TokenInfo]:
        """A new token: returns the secret (show it once) and what is stored about it."""
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        secret = PREFIX + secrets.token_urlsafe(32)
        digest = _digest(secret)
        info = TokenInfo(
            id=digest[:12],
            name=name,
            scope=scope,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        with self._lock:
            entries = self._load()
            entries[digest] = asdict(info)
            self._save(entries)
        return secret, info

    def verify(self, secret: str) -> TokenInfo | None:
        """The token's info if `secret` is a known token, else None (constant-time compare)."""
        digest = _digest(secret)
        for known, entry in self._load().items():
            if hmac.compare_digest(known, digest):
                return TokenInfo(**entry)
        return None

    def list(self) -> list[TokenInfo]:
        return [TokenInfo(**entry) for entry in self._load().values()]

    def names(self) -> dict[str, str]:
        """id -> name of the tokens that exist now (one read of the file; ConfigError when it
        cannot be read). Revoked tokens are gone from it."""
        return {entry["id"]: entry.get("name", "") for entry in self._load().values()}

    def ids(self) -> set[str]:
        """The ids of the tokens that exist now, read from the file each time: a token revoked
        by another process (`rackwatch token revoke`) is missing from it. Open WebSockets
        are re-checked with this (one small file read for all of them); ConfigError when the
        file cannot be read."""
        return {entry["id"] for entry in self._load().values()}

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            entries = self._load()
            kept = {d: e for d, e in entries.items() if e["id"] != token_id}
            if len(kept) == len(entries):
                return False
            self._save(kept)
            return True

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"cannot read the token file {self.path}: {exc}; "
                "fix or delete it, then create tokens again with `rackwatch token create`"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} is not a token file; delete it and create tokens again")
        return data

    def _save(self, entries: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entries, out, indent=2)
        os.replace(tmp, self.path)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
