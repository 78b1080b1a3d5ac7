"""The room's intelligence on `rackwatch run`'s stream: anomaly events, fan failure
predictions and health (docs/ANOMALY.md, docs/PREDICTION.md).

consumer.py    Intelligence (the bus consumer, scoring in a worker thread), IntelligenceCore
roles.py       which series are scored, which explain the others (load, commands)
anomalies.py   AnomalyStage: AnomalyDetector scores -> anomaly.started / anomaly.ended
fans.py        FanStage: fan_rpm / fan_level -> FanWearTracker -> prediction.fan_failure
healthview.py  health_now: alerts, states, anomalies and predictions -> health_report
clocks.py      each source's own clock, and which source speaks for each entity
snapshot.py    Snapshot, Stats: what the API reads, replaced whole after each batch
models.py      ModelStore: the learned residual model's versions on disk
retrain.py     Retrainer: fits the model from the store on a schedule, hands it over

The diagnosis (incidents) is engine/diagnosis, run by the core after the stages above.
"""

from rackwatch.engine.intelligence.anomalies import OpenAnomaly
from rackwatch.engine.intelligence.consumer import (
    SOURCE,
    Intelligence,
    IntelligenceConfig,
    IntelligenceCore,
)
from rackwatch.engine.intelligence.fans import FanPrediction
from rackwatch.engine.intelligence.healthview import HealthReport
from rackwatch.engine.intelligence.roles import DEFAULT_SKIP, HEALTH_METRIC, Role, role_of
from rackwatch.engine.intelligence.snapshot import Snapshot, Stats

__all__ = [
    "DEFAULT_SKIP",
    "HEALTH_METRIC",
    "SOURCE",
    "FanPrediction",
    "HealthReport",
    "Intelligence",
    "IntelligenceConfig",
    "IntelligenceCore",
    "OpenAnomaly",
    "Role",
    "Snapshot",
    "Stats",
    "role_of",
]
