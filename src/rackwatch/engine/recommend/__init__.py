"""GPU recommendation (seed 004): each GPU machine's like index in three levels, the top 3 by
free GPU memory (`like_server`), and where a job of N cards x M GB, C cores fits. Pure NumPy
over the newest values and the inventory; the API and `rackwatch recommend` give it.

fleet.py         the machines and their cards as arrays, from the newest values and inventory
availability.py  which machines may not be recommended (offline, maintenance, failed) and why
like.py          the like index, its thresholds (`LikeThresholds`) and like_server
placement.py     a job's fitting machines, best first, and why the others cannot take it
assess.py        one recommendation: all of the above over one fleet

The rules are in each module's docstring and in docs/API.md ("GPU recommendation").
"""

from rackwatch.engine.recommend.assess import Assessment, assess
from rackwatch.engine.recommend.availability import exclusion, exclusions
from rackwatch.engine.recommend.fleet import (
    METRICS,
    Fleet,
    FleetLayout,
    card_of,
    fleet_layout,
    gather,
)
from rackwatch.engine.recommend.like import Like, LikeThresholds
from rackwatch.engine.recommend.placement import (
    GIB,
    Candidate,
    Job,
    JobError,
    Placement,
    Rejection,
)

__all__ = [
    "GIB",
    "METRICS",
    "Assessment",
    "Candidate",
    "Fleet",
    "FleetLayout",
    "Job",
    "JobError",
    "Like",
    "LikeThresholds",
    "Placement",
    "Rejection",
    "assess",
    "card_of",
    "exclusion",
    "exclusions",
    "fleet_layout",
    "gather",
]
