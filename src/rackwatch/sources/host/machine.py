"""This machine as a source: its name in rackwatch and its collectors (the host, its GPUs).

Used by `rackwatch agent` (pushing to a server) and by `rackwatch run` (watching the machine
it runs on).
"""

from __future__ import annotations

import socket

from rackwatch.sources.host.gpu import GpuCollector
from rackwatch.sources.host.loop import Collector
from rackwatch.sources.host.system import HostCollector
from rackwatch.sources.readings import segment


def host_name(name: str | None = None) -> str:
    """The entity segment for this host: `name`, or the machine's hostname."""
    return segment(name or socket.gethostname(), fallback="localhost")


def host_collectors(name: str) -> list[Collector]:
    """The collectors of this machine: the host itself, and its NVIDIA GPUs where it has any
    (none: the GPU collector answers nothing, cheaply)."""
    host = HostCollector(name)
    return [host, GpuCollector(host.entity)]
