"""How well the intelligence does on the twin: `rackwatch evaluate` (docs/EVALUATION.md).

truth.py       the expected diagnosis per fault kind; labels from `fault.injected` events
detections.py  incidents opened and fan predictions, from the intelligence's events
match.py       which detection matches which fault (window, device), false alarms
retarget.py    a protocol's faults moved to a smaller room
grid.py        the runs: protocols x presets, fault-free rooms, one run per catalogue kind
runner.py      one run: twin + fan controller + IntelligenceCore
wear.py        time to failure of the worn fans (engine/predict/evaluate.py's definitions)
metrics.py     outcomes per fault, figures per kind and overall, targets
suite.py       the grid in a process pool -> Evaluation
report.py      Rich tables and JSON
"""

from rackwatch.engine.evaluation.grid import RunSpec, build_grid
from rackwatch.engine.evaluation.metrics import TARGETS, kind_figures, overall_figures, score_run
from rackwatch.engine.evaluation.runner import RunFailure, RunResult, execute
from rackwatch.engine.evaluation.suite import Evaluation, evaluate, run_grid

__all__ = [
    "TARGETS",
    "Evaluation",
    "RunFailure",
    "RunResult",
    "RunSpec",
    "build_grid",
    "evaluate",
    "execute",
    "kind_figures",
    "overall_figures",
    "run_grid",
    "score_run",
]
