"""Re-targeting a protocol's faults to a room of another size.

Each of seed 000's protocols names the entities of its own preset (`sensor-drift` hits s07 and
s09 of a medium room; `burst-fan-degradation` wears a fan of rack r02). To run every protocol
on every size, an entity the smaller room lacks is replaced by the equivalent one it has:

- a missing cluster or rack: the last one there is (c01/r02 → c01/r01);
- a missing server: the same slot in that rack if it exists and no other fault of the
  protocol uses it, else the highest slot no other fault uses (s07, s09 of a 5-server rack →
  s05, s03), so that faults stay on separate servers;
- the rest of the path (fan, PDU) is kept;
- a load burst over more servers than the entity holds runs on all of them.

>>> from rackwatch.twin import SCENARIOS, build_topology
>>> small = build_topology("small", 1, 0)
>>> [(f.kind, f.entity) for f in retarget(SCENARIOS["sensor-drift"].faults, small)]
[('sensor_drift', 'c01/r01/s04'), ('load_burst', 'c01/r01/s02'), \
('load_burst', 'c01/r01/s05'), ('sensor_stuck', 'c01/r01/s03')]
>>> [(f.entity, dict(f.params)) for f in retarget(SCENARIOS["burst-fan-degradation"].faults, small)]
[('c01/r01/s05/fan2', {}), ('c01', {'n_servers': 5})]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rackwatch.twin.faults import FAULTS, ScheduledFault, Target
from rackwatch.twin.topology import CRAC_PATH, ROOM_PATH, Topology


def exists(entity: str, topo: Topology) -> bool:
    """The room has this entity (server, fan, rack, PDU, cluster, CRAC or room)."""
    return (
        entity in topo.server_index
        or entity in topo.fan_index
        or entity in topo.rack_index
        or entity in topo.pdu_paths
        or entity in topo.cluster_paths
        or entity in (ROOM_PATH, CRAC_PATH)
    )


def _server_of(entity: str) -> str | None:
    parts = entity.split("/")
    return "/".join(parts[:3]) if len(parts) >= 3 and parts[2] != "pdu" else None


def equivalent(entity: str, topo: Topology, taken: Iterable[str] = ()) -> str:
    """The entity of `topo` that stands for `entity` (see the module text)."""
    if exists(entity, topo):
        return entity
    parts = entity.split("/")
    cluster = parts[0] if parts[0] in topo.cluster_paths else topo.cluster_paths[-1]
    if len(parts) == 1:
        return cluster
    racks = [r for r in topo.rack_paths if r.startswith(cluster + "/")]
    rack = f"{cluster}/{parts[1]}"
    if rack not in topo.rack_index:
        rack = racks[-1]
    if len(parts) == 2:
        return rack
    if parts[2] == "pdu":
        return f"{rack}/pdu"
    busy = set(taken)
    servers = [s for s in topo.server_paths if s.startswith(rack + "/")]
    server = f"{rack}/{parts[2]}"
    if server not in topo.server_index or server in busy:
        free = [s for s in servers if s not in busy]
        server = (free or servers)[-1]
    return "/".join([server, *parts[3:]])


def _servers_under(entity: str, topo: Topology) -> int:
    if entity in topo.server_index:
        return 1
    return sum(1 for s in topo.server_paths if s.startswith(entity + "/"))


def retarget(faults: Iterable[ScheduledFault], topo: Topology) -> tuple[ScheduledFault, ...]:
    """`faults` on `topo`: entities it lacks replaced by their equivalents, load bursts fitted."""
    faults = tuple(faults)
    taken = {s for f in faults if exists(f.entity, topo) and (s := _server_of(f.entity))}
    out = []
    for fault in faults:
        entity = equivalent(fault.entity, topo, taken)
        server = _server_of(entity)
        if server is not None:
            taken.add(server)
        params = dict(fault.params)
        if FAULTS[fault.kind].target == Target.SERVERS:
            wanted = int(params.get("n_servers", 1))
            params["n_servers"] = min(wanted, _servers_under(entity, topo))
            if params["n_servers"] == wanted and "n_servers" not in fault.params:
                del params["n_servers"]
        out.append(replace(fault, entity=entity, params=params))
    return tuple(out)
