"""Diagnosis: anomalies and predictions grouped into incidents, each with its scope (server,
rack, room), its nature (a real problem or a faulty sensor), its likely cause and a suggested
action (docs/ANOMALY.md, "Diagnosis").

incident.py   the vocabulary: Incident, Scope, Nature, Cause; the events' attributes
signals.py    SignalBook: every series' newest value, slow reference, peak and flat run
findings.py   direct readings (stopped fan, failed disk, capped PDU) and anomaly -> Finding
incidents.py  IncidentBook: findings grouped by cause and scope -> incident.* events
stage.py      DiagnosisStage: the stream stage that runs them on each batch
"""

from rackwatch.engine.diagnosis.findings import DiagnosisConfig, Finding
from rackwatch.engine.diagnosis.incident import Cause, Incident, Nature, Scope
from rackwatch.engine.diagnosis.incidents import IncidentBook
from rackwatch.engine.diagnosis.stage import DiagnosisStage

__all__ = [
    "Cause",
    "DiagnosisConfig",
    "DiagnosisStage",
    "Finding",
    "Incident",
    "IncidentBook",
    "Nature",
    "Scope",
]
