"""Fan energy of auto control against always-high, measured on the twin.

Runs a scenario (very-large by default: 20 servers, 40 fans) for one simulated day twice with
the same seed, once under the auto policy (the pure controller step every 5 s, through the same
telemetry path as the live controller) and once with every fan at high, as fast as the twin
goes. Prints fan, IT and facility energy, the saving, the highest CPU temperature and the share
of server-time above target for each.

    python bench/bench_fan_energy.py                         # very-large, 1 day, seed 0
    python bench/bench_fan_energy.py --scenario burst-fan-degradation --seeds 0 1 2
    python bench/bench_fan_energy.py --policies auto always-high always-medium always-low
"""

from __future__ import annotations

import argparse
import sys
import time

from rackwatch.engine.control import FanPolicy
from rackwatch.engine.control.compare import POLICIES, compare_policies
from rackwatch.settings import ControlSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="very-large")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    default_target = ControlSettings().target_celsius  # what `rackwatch run` holds
    parser.add_argument("--target", type=float, default=default_target, help="CPU target, °C")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=["auto", "always-high"])
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, step 5 s")
    savings = []
    for seed in args.seeds:
        began = time.perf_counter()
        report = compare_policies(
            args.scenario,
            args.hours * 3600.0,
            seed,
            policies=args.policies,
            fan_policy=FanPolicy(target_c=args.target),
        )
        print(report.format())
        print(f"({time.perf_counter() - began:.1f} s wall)\n")
        if "auto" in args.policies and "always-high" in args.policies:
            savings.append(report.saving_ratio())
    if len(savings) > 1:
        print(
            f"fan energy saved by auto over {len(savings)} seeds: "
            f"{100 * min(savings):.1f} % .. {100 * max(savings):.1f} %"
        )


if __name__ == "__main__":
    main()
