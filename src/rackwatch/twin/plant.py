"""The room's physics over a block of steps: utilisation and fan levels in, true values out.

Everything is algebraic per step except four first-order lags (CRAC supply, recirculation,
CPU heatsink rise, chassis rise), each applied to its own steady-state signal; so a whole block
is a few dozen array operations plus one loop over its steps (`physics.first_order_lag`).

    inlet   = supply + recirculation                       (lagged, tau 600 s and 90 s)
    cpu     = inlet + P_cpu·R_die + P_cpu·R_sink(airflow)  (heatsink part lagged, tau 180 s)
    chassis = inlet + 0.9·ΔT_exhaust(P, airflow)           (rise lagged, tau 300 s)

A CPU answers a load step at once (die and heat spreader, half of its rise at design airflow:
they settle within a few seconds, less than a 5 s step) and then over minutes (the heatsink,
the other half); a stopped fan acts only through the slow heatsink part. The calibration (what
each parameter is, its source, the ranges it gives) is in docs/TWIN.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rackwatch.twin import physics as ph
from rackwatch.twin.faults import Conditions
from rackwatch.twin.topology import CPU_POWER_SHARE, FANS_PER_SERVER, Topology

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PlantParams:
    tau_supply_s: float = 600.0
    tau_recirculation_s: float = 90.0
    tau_cpu_s: float = 180.0
    """Heatsink to air."""
    die_share: float = 0.5
    """Share of the CPU's rise at design airflow across the die and spreader: airflow-free and
    immediate (a load step shows within one step)."""
    tau_chassis_s: float = 300.0
    leak_base: float = 0.10
    """Share of a rack's mean exhaust rise reaching a mid-height intake, balanced airflow: the top
    of a rack breathes 1-3 °C warmer air than its bottom (a well-kept cold aisle)."""
    imbalance_gain: float = 2.0
    neighbour_weight: float = 0.15
    chassis_mix: float = 0.9
    """The chassis probe sees this share of the exhaust rise."""
    min_airflow_ratio: float = 0.1
    """Natural convection and chassis leaks when the fans stall, as a share of nominal."""
    cpu_throttle_c: float = 100.0
    """Tjmax: the package throttles here and does not get hotter (Intel/AMD: 95-105 °C)."""


class Plant:
    """Holds the lag state between blocks; `block()` advances it."""

    def __init__(self, topo: Topology, step_s: float, params: PlantParams | None = None) -> None:
        self.topo = topo
        self.params = p = params or PlantParams()
        n = topo.n_servers
        taus = np.concatenate(
            (
                [p.tau_supply_s],
                np.full(n, p.tau_recirculation_s),
                np.full(n, p.tau_cpu_s),
                np.full(n, p.tau_chassis_s),
            )
        )
        self.alpha = ph.lag_factor(step_s, taus)
        self.state: F64 | None = None
        self._dynamic_w = topo.peak_w - topo.idle_w
        self._min_cfm = p.min_airflow_ratio * topo.nominal_cfm

    def block(
        self, utilization: F64, fan_level: I64, cond: Conditions, gpu_w: F64 | None = None
    ) -> dict[str, F64]:
        """True values of one block, keyed by metric; arrays are (steps, entities).

        `gpu_w` (steps, servers) is the power of the servers' GPUs: it is in their power and
        their exhaust, and a capped PDU throttles only the CPUs.
        """
        topo, p = self.topo, self.params
        n_steps, n = utilization.shape
        room = topo.room

        speed = ph.LEVEL_SPEED[fan_level]
        health = cond.peek("fan_health")
        speed = np.broadcast_to(speed, (n_steps, topo.n_fans)) if health is None else speed * health
        fan_cfm = ph.fan_airflow(speed, topo.fan_max_cfm)
        fan_w = ph.fan_power(speed, topo.fan_max_w)
        server_cfm = fan_cfm.reshape(n_steps, n, FANS_PER_SERVER).sum(axis=2)
        server_fan_w = fan_w.reshape(n_steps, n, FANS_PER_SERVER).sum(axis=2)

        # power, and the PDU cap throttling the CPUs of its rack
        fixed = server_fan_w + topo.idle_w
        delta = cond.peek("power_delta_w")
        if delta is not None:
            fixed += delta
        if gpu_w is not None:
            fixed += gpu_w
        dynamic = self._dynamic_w * utilization
        cap = topo.pdu_capacity_w * _or_one(cond.peek("pdu_capacity_ratio"))
        scale = ph.throttle_scale(
            cap,
            np.add.reduceat(fixed, topo.rack_start, axis=1),
            np.add.reduceat(dynamic, topo.rack_start, axis=1),
        )
        if (scale < 1.0).any():
            server_scale = scale[:, topo.server_rack]
            utilization = utilization * server_scale
            dynamic *= server_scale
        power = fixed + dynamic
        pdu_w = np.add.reduceat(power, topo.rack_start, axis=1)

        # room: heat, CRAC, facility
        it_w = pdu_w.sum(axis=1)
        losses_w = room.distribution_loss_ratio * it_w + room.fixed_share * topo.crac_capacity_w
        heat_w = it_w + losses_w
        crac_cap = topo.crac_capacity_w * _or_one(cond.peek("crac_capacity_ratio"))[:, 0]
        cop = room.crac_cop * _or_one(cond.peek("crac_cop_ratio"))[:, 0]
        supply_ss = ph.crac_supply_temperature(room.crac_setpoint_c, heat_w, crac_cap)
        crac_w = ph.crac_power(heat_w, crac_cap, cop, room.crac_blower_share * topo.crac_capacity_w)
        facility_w = it_w + crac_w + losses_w

        # air: exhaust rise, recirculation (rack imbalance, slot, neighbours)
        cfm = np.maximum(server_cfm, self._min_cfm)
        exhaust = ph.exhaust_rise(power, cfm)
        size = topo.rack_size
        rack_cfm = np.add.reduceat(server_cfm, topo.rack_start, axis=1) / size
        rack_cfm2 = np.add.reduceat(server_cfm * server_cfm, topo.rack_start, axis=1) / size
        with np.errstate(divide="ignore", invalid="ignore"):
            imbalance = np.sqrt(np.maximum(rack_cfm2 - rack_cfm * rack_cfm, 0.0)) / rack_cfm
        imbalance = np.nan_to_num(imbalance, nan=1.0, posinf=1.0)
        leak = ph.leak_fraction(
            p.leak_base * topo.rack_exposure,
            imbalance,
            p.imbalance_gain,
            _or_one(cond.peek("recirculation_factor")),
        )
        rack_exhaust = np.add.reduceat(exhaust, topo.rack_start, axis=1) / size
        neighbours = exhaust[:, topo.neighbour_index[:, 0]] * topo.neighbour_mask[:, 0]
        neighbours += exhaust[:, topo.neighbour_index[:, 1]] * topo.neighbour_mask[:, 1]
        rack = topo.server_rack

        steady = np.empty((n_steps, 1 + 3 * n))
        steady[:, 0] = supply_ss
        steady[:, 1 : n + 1] = ph.recirculation(
            leak[:, rack],
            topo.position_weight,
            rack_exhaust[:, rack],
            p.neighbour_weight,
            neighbours,
        )
        cpu_w = CPU_POWER_SHARE * (topo.idle_w + dynamic)
        die, steady[:, n + 1 : 2 * n + 1] = ph.cpu_rise(
            cpu_w, topo.cpu_r_nominal, cfm, topo.nominal_cfm, p.die_share
        )
        steady[:, 2 * n + 1 :] = p.chassis_mix * exhaust
        lagged = ph.first_order_lag(
            steady, steady[0] if self.state is None else self.state, self.alpha
        )
        self.state = lagged[-1].copy()

        inlet = lagged[:, 1 : n + 1] + lagged[:, :1]
        cpu = inlet + lagged[:, n + 1 : 2 * n + 1]
        cpu += die
        np.minimum(cpu, p.cpu_throttle_c, out=cpu)
        chassis = inlet + lagged[:, 2 * n + 1 :]
        disk = cond.peek("disk_ok")
        return {
            "cpu_temperature_celsius": cpu,
            "inlet_temperature_celsius": inlet,
            "chassis_temperature_celsius": chassis,
            "power_watts": power,
            "airflow_cfm": server_cfm,
            "cpu_utilization_ratio": utilization,
            "disk_ok": np.ones((1, n)) if disk is None else disk,
            "fan_level": fan_level.astype(np.float64)[None, :],
            "fan_rpm": ph.fan_rpm(speed, topo.fan_max_rpm),
            "fan_power_watts": fan_w,
            "pdu_power_watts": pdu_w,
            "pdu_capacity_watts": np.broadcast_to(cap, (n_steps, topo.n_racks)),
            "crac_supply_temperature_celsius": lagged[:, :1],
            "crac_power_watts": crac_w[:, None],
            "it_power_watts": it_w[:, None],
            "facility_power_watts": facility_w[:, None],
            "pue_ratio": ph.pue(facility_w, it_w)[:, None],
        }


def _or_one(array: F64 | None) -> F64:
    return np.ones((1, 1)) if array is None else array
