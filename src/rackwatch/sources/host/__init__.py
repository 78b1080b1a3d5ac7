"""Collectors for a real machine (`host/<name>` and its components), one job per module:

- `system`: the host itself with psutil: CPU, memory, swap, disks, network, uptime,
  processes, sessions, temperature sensors and fans (`HostCollector`);
- `gpu`: its NVIDIA GPUs (`host/<name>/gpu<k>`).

Each collector's `collect()` returns `Reading`s (`rackwatch.sources.readings`) for one instant
and `inventory()` the static facts; the caller stamps and batches them (`to_batch`).
"""
