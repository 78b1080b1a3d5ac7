"""The MQTT devices' inventory, kept from their retained capabilities and availability.

A device is an entity (its id read as a path, `topics.entity_of`); its fans are the entities
`<device path>/<fan>` of kind `fan` with a `server` attribute, the shape the fan controller's
`FanLayout.from_inventory` and the dashboard read. A server whose rack (or the rack's cluster)
no device announces gets a plain `rack` (`cluster`) item, so the dashboard can draw it.

>>> from rackwatch.sources.mqtt.payloads import Capabilities
>>> inv = DeviceInventory()
>>> inv.announce("c01.r01.s01", Capabilities(kind="server", fans=["fan1"], slot=1))
True
>>> [(i["entity"], i["kind"]) for i in inv.items()]
[('c01', 'cluster'), ('c01/r01', 'rack'), ('c01/r01/s01', 'server'), ('c01/r01/s01/fan1', 'fan')]
>>> inv.fan_target("c01/r01/s01")
[('c01.r01.s01', 'fan1')]
>>> inv.announce("c01.r01.s01", Capabilities(kind="server", fans=["fan1"], slot=1))
False
"""

from __future__ import annotations

from dataclasses import dataclass

from rackwatch.errors import CommandRejected
from rackwatch.model.entity import parent
from rackwatch.sources.mqtt.payloads import Capabilities
from rackwatch.sources.mqtt.topics import device_of, entity_of
from rackwatch.sources.readings import InventoryItem

SOURCE = "mqtt"


@dataclass
class Device:
    device: str
    entity: str
    capabilities: Capabilities
    is_online: bool = True


class DeviceInventory:
    """Devices by id; not thread-safe (the source's loop owns it)."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self._fans: dict[str, tuple[str, str]] = {}
        """fan entity -> (device id, fan name)"""

    def announce(self, device: str, capabilities: Capabilities) -> bool:
        """Record a device's capabilities; True when something changed."""
        known = self.devices.get(device)
        if known is not None and known.capabilities == capabilities:
            return False
        entity = entity_of(device)
        if known is None:
            self.devices[device] = Device(device, entity, capabilities)
        else:
            for fan in known.capabilities.fans:
                self._fans.pop(f"{entity}/{fan}", None)
            known.capabilities = capabilities
        for fan in capabilities.fans:
            self._fans[f"{entity}/{fan}"] = (device, fan)
        return True

    def remove(self, device: str) -> bool:
        """Forget a device (its retained capabilities were cleared) and its fans; True when
        it was known."""
        known = self.devices.pop(device, None)
        if known is None:
            return False
        for fan in known.capabilities.fans:
            self._fans.pop(f"{known.entity}/{fan}", None)
        return True

    def set_online(self, device: str, is_online: bool) -> bool:
        """Availability of a known device; True when it changed."""
        known = self.devices.get(device)
        if known is None or known.is_online == is_online:
            return False
        known.is_online = is_online
        return True

    def items(self) -> list[InventoryItem]:
        """Every device and fan as inventory items, with the racks and clusters they imply,
        ordered by path."""
        items: dict[str, InventoryItem] = {}
        for d in self.devices.values():
            caps = d.capabilities
            item: InventoryItem = {"entity": d.entity, "kind": caps.kind, **caps.attributes}
            item |= {"source": SOURCE, "device": d.device, "online": d.is_online}
            if caps.name is not None:
                item["name"] = caps.name
            if caps.kind == "server":
                rack = caps.rack or parent(d.entity)
                if rack is not None:
                    item["rack"] = rack
                    items.setdefault(rack, {"entity": rack, "kind": "rack", "source": SOURCE})
                    cluster = parent(rack)
                    if cluster is not None:
                        items.setdefault(
                            cluster, {"entity": cluster, "kind": "cluster", "source": SOURCE}
                        )
            if caps.slot is not None:
                item["slot"] = caps.slot
            items[d.entity] = item  # an announced device wins over an implied one
            for fan in caps.fans:
                path = f"{d.entity}/{fan}"
                items[path] = {"entity": path, "kind": "fan", "server": d.entity, "source": SOURCE}
        return [items[k] for k in sorted(items)]

    def fan_target(self, target: str) -> list[tuple[str, str]]:
        """The (device, fan) pairs a `fan.set_level` target names: a fan, or every fan of a
        device; CommandRejected for anything else."""
        if target in self._fans:
            return [self._fans[target]]
        try:
            d = self.devices.get(device_of(target))
        except ValueError:
            d = None
        if d is not None and d.entity == target and d.capabilities.fans:
            return [(d.device, fan) for fan in d.capabilities.fans]
        raise CommandRejected(f"no MQTT device fan is named {target[:256]!r}")

    def fan_entity(self, device: str, fan: str) -> str:
        return f"{self.devices[device].entity}/{fan}"
