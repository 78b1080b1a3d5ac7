"""Which fans the controller drives and which server each one cools.

Built once from an inventory (the twin's, or the store's entity records), so the controller
never imports a source: a fan is an inventory item of kind "fan" whose "server" attribute names
its server. The arrays let the step work on every server at once.

>>> layout = FanLayout.from_inventory([
...     {"entity": "c01/r01/s01", "kind": "server"},
...     {"entity": "c01/r01/s01/fan1", "kind": "fan", "server": "c01/r01/s01"},
...     {"entity": "c01/r01/s01/fan2", "kind": "fan", "server": "c01/r01/s01"},
...     {"entity": "c01/r01/s02", "kind": "server"},
...     {"entity": "c01/r01/s02/fan1", "kind": "fan", "server": "c01/r01/s02"},
... ])
>>> layout.n_servers, layout.n_fans, layout.fan_server.tolist()
(2, 3, [0, 0, 1])
>>> layout.fans_of("c01/r01/s01").tolist(), layout.fans_of("c01/r01/s02/fan1").tolist()
([0, 1], [2])
>>> layout.fans_under("c01").tolist()
[0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from rackwatch.errors import CommandRejected

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class FanLayout:
    """Server and fan paths; `fan_server[f]` is the index of the server that fan f cools."""

    server_paths: tuple[str, ...]
    fan_paths: tuple[str, ...]
    fan_server: I64

    def __post_init__(self) -> None:
        if len(self.fan_server) != len(self.fan_paths):
            raise ValueError("fan_server needs one server index per fan")
        if len(self.fan_paths) and not (
            int(self.fan_server.min()) >= 0 and int(self.fan_server.max()) < self.n_servers
        ):
            raise ValueError("fan_server holds an index that names no server")

    @classmethod
    def from_inventory(cls, items: Iterable[Mapping[str, Any]]) -> FanLayout:
        """From inventory dicts (`entity`, `kind`, and `server` on fans); order is kept."""
        items = list(items)
        servers = tuple(str(i["entity"]) for i in items if i.get("kind") == "server")
        index = {path: k for k, path in enumerate(servers)}
        fans: list[str] = []
        owners: list[int] = []
        for item in items:
            if item.get("kind") != "fan":
                continue
            owner = index.get(str(item.get("server")))
            if owner is None:
                raise ValueError(f"fan {item.get('entity')!r} names no known server")
            fans.append(str(item["entity"]))
            owners.append(owner)
        return cls(servers, tuple(fans), np.array(owners, dtype=np.int64))

    def extended(self, items: Iterable[Mapping[str, Any]]) -> FanLayout:
        """This layout with the servers and fans of `items` it lacks appended (the existing
        indices stay); a fan naming no known server is left out."""
        items = list(items)
        servers = list(self.server_paths)
        known = set(servers)
        for item in items:
            path = str(item.get("entity"))
            if item.get("kind") == "server" and path not in known:
                servers.append(path)
                known.add(path)
        index = {path: k for k, path in enumerate(servers)}
        fans, owners = list(self.fan_paths), self.fan_server.tolist()
        have = set(fans)
        for item in items:
            path, owner = str(item.get("entity")), index.get(str(item.get("server")))
            if item.get("kind") == "fan" and path not in have and owner is not None:
                fans.append(path)
                owners.append(owner)
                have.add(path)
        return FanLayout(tuple(servers), tuple(fans), np.array(owners, dtype=np.int64))

    @property
    def n_servers(self) -> int:
        return len(self.server_paths)

    @property
    def n_fans(self) -> int:
        return len(self.fan_paths)

    @cached_property
    def server_index(self) -> dict[str, int]:
        return {path: k for k, path in enumerate(self.server_paths)}

    @cached_property
    def fan_index(self) -> dict[str, int]:
        return {path: k for k, path in enumerate(self.fan_paths)}

    @cached_property
    def fans_per_server(self) -> I64:
        return np.bincount(self.fan_server, minlength=self.n_servers).astype(np.int64)

    def fans_of(self, target: str) -> I64:
        """The fan itself, or every fan of a server; CommandRejected for anything else."""
        if target in self.fan_index:
            return np.array([self.fan_index[target]], dtype=np.int64)
        server = self.server_index.get(target)
        if server is not None:
            return np.flatnonzero(self.fan_server == server).astype(np.int64)
        raise CommandRejected(
            f"unknown fan target {target!r}: name a fan (e.g. {self._example_fan!r}) "
            f"or a server (e.g. {self._example_server!r})"
        )

    def fans_under(self, entity: str) -> I64:
        """Fans at or below `entity` (a fan, server, rack, cluster); CommandRejected if none."""
        prefix = entity.rstrip("/") + "/"
        found = [k for k, p in enumerate(self.fan_paths) if p == entity or p.startswith(prefix)]
        if not found:
            raise CommandRejected(
                f"no fan at or below {entity!r}: name a fan, a server, a rack or a cluster "
                f"(e.g. {self._example_server!r})"
            )
        return np.array(found, dtype=np.int64)

    @property
    def _example_fan(self) -> str:
        return self.fan_paths[0] if self.fan_paths else "c01/r01/s01/fan1"

    @property
    def _example_server(self) -> str:
        return self.server_paths[0] if self.server_paths else "c01/r01/s01"
