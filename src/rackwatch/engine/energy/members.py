"""Which series measure what, and where each belongs: servers, racks, rooms, the site.

Roles, from the metric (model/catalogue.py):

- `server`: `power_watts` of a twin server (`c01/r01/s01`, fans included), a host
  (`host/<name>`) or a machine summed from PDU outlets: its IT energy;
- `gpu`: `gpu_power_watts` of `host/<name>/gpuN`: its host's IT energy, only when the host
  has no `power_watts` of its own (that would include it already);
- `fan`: `fan_power_watts` of `.../s01/fanN`: fan energy (inside its server's);
- `pdu`: `pdu_power_watts` of `c01/r01/pdu` or `pdu/<name>`: its rack's metered total;
- `it`, `facility`: `it_power_watts` and `facility_power_watts` of `room`: the room's
  metered IT and facility (IT, cooling, losses) totals.

Membership: a machine's rack is its inventory `rack` attribute (twin servers and declared
machines have one), else its parent path when the path is `cluster/rack/server` deep (a
`host/<name>` has none); a rack PDU's rack likewise. A rack's room is its declared `room`,
else the inventory's only room when it has exactly one (the twin's `room`). A room meter's
room is its own entity. Everything is in the site.

>>> m = Membership.of([EntityRecord("room", "room"), EntityRecord("c01/r01", "rack")])
>>> m.rack("c01/r01/s01"), m.rack("host/web1"), m.room("c01/r01"), m.room(None)
('c01/r01', None, 'room', None)
>>> keys = [("c01/r01/s01", "power_watts"), ("host/a/gpu0", "gpu_power_watts"),
...         ("host/b", "power_watts"), ("host/b/gpu0", "gpu_power_watts"),
...         ("c01/r01/s01", "cpu_temperature_celsius")]
>>> [(r and str(r), m) for r, m in roles_of(keys)]  # doctest: +NORMALIZE_WHITESPACE
[('server', 'c01/r01/s01'), ('gpu', 'host/a'), ('server', 'host/b'), (None, None),
 (None, None)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from rackwatch.model.entity import parent
from rackwatch.store.base import EntityRecord

HOST_ROOT = "host"
SITE = "site"
"""The site row's entity: every series belongs to it."""


class Role(StrEnum):
    SERVER = "server"
    GPU = "gpu"
    FAN = "fan"
    PDU = "pdu"
    IT = "it"
    FACILITY = "facility"


ROLE_OF_METRIC: dict[str, Role] = {
    "power_watts": Role.SERVER,
    "gpu_power_watts": Role.GPU,
    "fan_power_watts": Role.FAN,
    "pdu_power_watts": Role.PDU,
    "it_power_watts": Role.IT,
    "facility_power_watts": Role.FACILITY,
}
ROLE_CODES: dict[Role, int] = {role: i for i, role in enumerate(Role)}
POWER_METRICS = tuple(ROLE_OF_METRIC)


def roles_of(keys: Sequence[tuple[str, str]]) -> list[tuple[Role | None, str | None]]:
    """(role, member) of each (entity, metric): the member is the server a series counts for
    (a GPU's host), the fan, the PDU or the meter itself; (None, None) for a series that is
    not energy, or a GPU whose host has a `power_watts` of its own."""
    powered = {entity for entity, metric in keys if metric == "power_watts"}
    out: list[tuple[Role | None, str | None]] = []
    for entity, metric in keys:
        role = ROLE_OF_METRIC.get(metric)
        if role is Role.GPU:
            host = parent(entity)
            if host is None or host in powered:
                out.append((None, None))
                continue
            out.append((role, host))
        elif role is None:
            out.append((None, None))
        else:
            out.append((role, entity))
    return out


@dataclass(frozen=True, slots=True)
class Membership:
    """Where machines and PDUs belong (see the module docstring); from the inventory."""

    rack_of: Mapping[str, str] = field(default_factory=dict)
    """Entity -> its rack, from the inventory's `rack` attributes."""
    room_of: Mapping[str, str] = field(default_factory=dict)
    """Rack -> its room, from declared racks' `room`."""
    only_room: str | None = None
    """The inventory's room when it has exactly one: the room of racks that name none."""

    @classmethod
    def of(cls, records: Iterable[EntityRecord]) -> Membership:
        rack_of: dict[str, str] = {}
        room_of: dict[str, str] = {}
        rooms: list[str] = []
        for r in records:
            rack = r.attributes.get("rack")
            if isinstance(rack, str) and rack:
                rack_of[r.path] = rack
            if r.kind == "rack":
                room = r.attributes.get("room")
                if isinstance(room, str) and room:
                    room_of[r.path] = room
            elif r.kind == "room":
                rooms.append(r.path)
        return cls(rack_of, room_of, rooms[0] if len(rooms) == 1 else None)

    def rack(self, entity: str) -> str | None:
        """The rack of a machine or PDU; None when it has none (a host, the room)."""
        found = self.rack_of.get(entity)
        if found is not None:
            return found
        segments = entity.split("/")
        if len(segments) >= 3 and segments[0] != HOST_ROOT:
            return parent(entity)
        return None

    def room(self, rack: str | None) -> str | None:
        if rack is None:
            return None
        return self.room_of.get(rack, self.only_room)

    def group_of(self, role: Role, member: str, group: str) -> str | None:
        """The row of `group` (server, rack, room, site) a member of `role` counts in."""
        if group == SITE:
            return SITE
        if role in (Role.IT, Role.FACILITY):  # a room's meters
            return member if group == "room" else None
        if role is Role.FAN:
            server = parent(member)
            if server is None:
                return None
            if group == "server":
                return server
            rack = self.rack(server)
            return rack if group == "rack" else self.room(rack)
        if group == "server":
            return member if role in (Role.SERVER, Role.GPU) else None
        rack = self.rack(member)
        return rack if group == "rack" else self.room(rack)
