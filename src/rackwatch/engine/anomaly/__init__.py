"""Streaming anomaly scores, the first layer of the room's intelligence (docs/ANOMALY.md).

- `AnomalyDetector` (`stream.py`): every series of a room at once; per sample a score in
  [0, 1] from four detectors (deviation from a robust baseline, level shift, stuck value,
  NULL run) and anomaly starts/ends with hysteresis.
- `ResidualModel` / `ResidualScorer` (`residual.py`): a device's target signal (a CPU's
  temperature) against what its other signals explain, fitted from stored history.
- `detect_csv` (`csvscore.py`): `rackwatch detect`, one CSV series through the same core.

Pure NumPy over `Batch` columns; the wiring (bus events, `rackwatch run`, REST) is not here.
"""

from rackwatch.engine.anomaly.residual import (
    ResidualConfig,
    ResidualModel,
    ResidualScorer,
    ResidualSpec,
)
from rackwatch.engine.anomaly.scores import AnomalyChange, Detector, Scores, Thresholds
from rackwatch.engine.anomaly.stream import AnomalyDetector, DetectorConfig

__all__ = [
    "AnomalyChange",
    "AnomalyDetector",
    "Detector",
    "DetectorConfig",
    "ResidualConfig",
    "ResidualModel",
    "ResidualScorer",
    "ResidualSpec",
    "Scores",
    "Thresholds",
]
