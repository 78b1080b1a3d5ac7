"""The twin's physics: pure, vectorised functions (arrays in, arrays out), no state, no I/O.

Units are SI-ish and named: watts, °C, cfm (cubic feet per minute), seconds. Every function
broadcasts, so the same code serves one server, a rack, or a (time, server) block.

>>> speed = LEVEL_SPEED[np.array([0, 1, 2, 3])]
>>> fan_power(speed, 12.0).round(2).tolist()     # affinity law: power ∝ speed³
[0.0, 0.77, 4.12, 12.0]
>>> fan_airflow(speed, 30.0).round(1).tolist()   # affinity law: airflow ∝ speed
[0.0, 12.0, 21.0, 30.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
ArrayLike = Any  # float | ndarray: every function broadcasts

LEVEL_SPEED: F64 = np.array([0.0, 0.4, 0.7, 1.0])
"""Fan speed as a fraction of its maximum for level 0 off, 1 low, 2 medium, 3 high."""

AIR_RISE_C_PER_W_PER_CFM = 1.0 / (1.2 * 1005.0 * 0.00047194745)
"""ΔT = P / (rho·c_p·Q): with rho = 1.2 kg/m³, c_p = 1005 J/(kg·K), 1 cfm = 4.72e-4 m³/s, ≈ 1.76."""


def server_power(idle_w: ArrayLike, peak_w: ArrayLike, utilization: ArrayLike) -> F64:
    """IT power of a server, fans excluded: idle + (peak - idle) * utilisation.

    >>> float(server_power(100.0, 300.0, 0.5))
    200.0
    """
    return np.asarray(idle_w + (peak_w - idle_w) * utilization, dtype=np.float64)


def gpu_power(
    idle_w: ArrayLike, max_w: ArrayLike, limit_w: ArrayLike, utilization: ArrayLike
) -> F64:
    """Board power of a GPU: idle + (max - idle) * utilisation, held to its power limit.

    >>> gpu_power(50.0, 420.0, 400.0, np.array([0.0, 0.5, 1.0])).tolist()
    [50.0, 235.0, 400.0]
    """
    return np.asarray(np.minimum(idle_w + (max_w - idle_w) * utilization, limit_w))


def fan_airflow(speed: ArrayLike, max_cfm: ArrayLike) -> F64:
    """Airflow of a fan at `speed` (fraction of max): first affinity law, Q ∝ n."""
    return np.asarray(speed * max_cfm, dtype=np.float64)


def fan_power(speed: ArrayLike, max_w: ArrayLike) -> F64:
    """Electrical power of a fan at `speed`: third affinity law, P ∝ n³."""
    return np.asarray(max_w * speed**3, dtype=np.float64)


def fan_rpm(speed: ArrayLike, max_rpm: ArrayLike) -> F64:
    """Tachometer reading of a fan turning at `speed`."""
    return np.asarray(speed * max_rpm, dtype=np.float64)


def throttle_scale(cap_w: ArrayLike, fixed_w: ArrayLike, dynamic_w: ArrayLike) -> F64:
    """Share of the utilisation-driven power that a capped PDU lets through, in [0, 1].

    The fixed part (idle, fans) cannot be throttled; the CPUs are slowed until the sum fits.

    >>> throttle_scale(np.array([1000.0, 500.0, 200.0]), 300.0, 400.0).tolist()
    [1.0, 0.5, 0.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (np.asarray(cap_w) - fixed_w) / dynamic_w
    return np.asarray(np.clip(np.nan_to_num(scale, nan=1.0, posinf=1.0, neginf=0.0), 0.0, 1.0))


def exhaust_rise(power_w: ArrayLike, airflow_cfm: ArrayLike) -> F64:
    """Air temperature rise through a server, ΔT = P / (rho·c_p·Q).

    >>> round(float(exhaust_rise(300.0, 52.8)), 1)
    10.0
    """
    return np.asarray(AIR_RISE_C_PER_W_PER_CFM * power_w / airflow_cfm, dtype=np.float64)


def cpu_rise(
    cpu_power_w: ArrayLike,
    r_nominal: ArrayLike,
    airflow_cfm: ArrayLike,
    nominal_cfm: ArrayLike,
    die_share: float = 0.5,
    exponent: float = 0.8,
) -> tuple[F64, F64]:
    """Steady CPU temperature above inlet, P·R(Q) with R = R_nom·(s + (1 - s)·(Q_nom/Q)^0.8),
    in its two parts: (die, heatsink).

    `s` is the share of the die and heat spreader (conduction, airflow-independent, settles within
    seconds); the rest is the heatsink's convection, whose conductance grows as Q^0.8 (turbulent
    flow over fins) and which settles in minutes. Halving the airflow (one fan of two off, the
    other unchanged) raises the whole rise by ~37 %.

    >>> [round(float(x), 1) for x in cpu_rise(100.0, 0.3, 40.0, 40.0)]
    [15.0, 15.0]
    >>> round(float(sum(cpu_rise(100.0, 0.3, 20.0, 40.0))), 1)
    41.1
    """
    drive = np.multiply(cpu_power_w, r_nominal)
    sink = np.divide(nominal_cfm, airflow_cfm) ** exponent
    sink *= drive
    sink *= 1.0 - die_share
    return np.asarray(drive * die_share), np.asarray(sink)


def leak_fraction(
    base: ArrayLike, imbalance: ArrayLike, gain: float, factor: ArrayLike = 1.0
) -> F64:
    """Share of a rack's exhaust heat that recirculates to the intakes.

    Rises with the airflow imbalance inside the rack (std/mean of server airflows) and with
    a misdistribution factor (hot-aisle containment breach, degraded CRAC airflow).

    >>> round(float(leak_fraction(0.2, 0.5, 2.0, 1.5)), 6)
    0.6
    """
    return np.asarray(base * (1.0 + gain * np.asarray(imbalance)) * factor, dtype=np.float64)


def recirculation(
    leak: ArrayLike,
    position_weight: ArrayLike,
    rack_mean_rise: ArrayLike,
    neighbour_weight: float,
    neighbour_rise: ArrayLike,
) -> F64:
    """Inlet temperature above CRAC supply: recirculated exhaust heat reaching a server.

    Higher slots get more (position weight); the exhaust of the servers just above and below
    adds a local term, so a hot server warms its neighbours when airflow is poor.

    >>> float(recirculation(0.25, 1.2, 8.0, 0.15, 16.0))
    3.0
    """
    total = position_weight * rack_mean_rise + neighbour_weight * np.asarray(neighbour_rise)
    return np.asarray(leak * total, dtype=np.float64)


def crac_supply_temperature(
    setpoint_c: ArrayLike,
    heat_w: ArrayLike,
    capacity_w: ArrayLike,
    load_gain_c: float = 3.0,
    overload_gain_c: float = 12.0,
    max_c: float = 35.0,
) -> F64:
    """Steady supply air temperature: the setpoint, rising with the load ratio rho = heat/capacity.

    It creeps up as rho² below capacity and climbs steeply (linear term) once rho > 1, which is what
    an undersized or degraded CRAC does; it saturates at `max_c` (the unit then barely cools).

    >>> heat = np.array([0.0, 5000.0, 12000.0, 9e9])
    >>> crac_supply_temperature(18.0, heat, 10000.0).round(2).tolist()
    [18.0, 18.75, 24.72, 35.0]
    """
    rho = np.asarray(heat_w) / capacity_w
    rise = load_gain_c * rho**2 + overload_gain_c * np.maximum(rho - 1.0, 0.0)
    return np.asarray(np.minimum(setpoint_c + rise, max_c))


def crac_power(heat_w: ArrayLike, capacity_w: ArrayLike, cop: ArrayLike, blower_w: float) -> F64:
    """Electrical power of the CRAC: blower plus the heat it manages to remove over its COP.

    >>> float(crac_power(8000.0, 10000.0, 4.0, 300.0))
    2300.0
    """
    return np.asarray(blower_w + np.minimum(heat_w, capacity_w) / cop, dtype=np.float64)


def pue(facility_w: ArrayLike, it_w: ArrayLike) -> F64:
    """Power usage effectiveness, facility / IT.

    >>> float(pue(6000.0, 4000.0))
    1.5
    """
    return np.asarray(np.asarray(facility_w) / it_w, dtype=np.float64)


def lag_factor(dt_s: float, tau_s: ArrayLike) -> F64:
    """Per-step decay of a first-order lag, exp(-dt/tau): the exact zero-order-hold discretisation.

    >>> round(float(lag_factor(5.0, 180.0)), 4)
    0.9726
    """
    return np.asarray(np.exp(-dt_s / np.asarray(tau_s, dtype=np.float64)))


def first_order_lag(x: F64, y0: F64, alpha: F64) -> F64:
    """Filter each column of `x` (steps, columns): y[k] = a·y[k-1] + (1 - a)·x[k].

    A loop over time steps only (each step is vectorised over columns), so the result does not
    depend on how a long run is split into blocks: the same arithmetic in the same order.
    Costs two ufunc calls per step.

    >>> step = np.array([[1.0], [1.0], [1.0]])
    >>> first_order_lag(step, np.array([0.0]), np.array([0.5])).ravel().tolist()
    [0.5, 0.75, 0.875]
    """
    drive = x * (1.0 - alpha)
    out = np.empty_like(x)
    prev = y0
    for k in range(x.shape[0]):
        row = out[k]
        np.multiply(prev, alpha, out=row)
        np.add(row, drive[k], out=row)
        prev = row
    return out


def quantize(values: F64, resolution: float | None) -> F64:
    """Round in place to the sensor's resolution (NaN stays NaN) and return `values`.

    Resolutions below 1 are applied as rint(v·10ⁿ)/10ⁿ so that 22.4 is the double nearest to
    22.4 (not 224 * 0.1 = 22.400000000000002).

    >>> quantize(np.array([22.437, 8641.5, np.nan]), 0.1).tolist()
    [22.4, 8641.5, nan]
    >>> quantize(np.array([8644.0, 8646.0]), 10.0).tolist()
    [8640.0, 8650.0]
    """
    if resolution is None or resolution <= 0:
        return values
    if resolution < 1.0:
        scale = float(round(1.0 / resolution))
        np.multiply(values, scale, out=values)
        np.rint(values, out=values)
        np.divide(values, scale, out=values)
    else:
        np.divide(values, resolution, out=values)
        np.rint(values, out=values)
        np.multiply(values, resolution, out=values)
    return values
