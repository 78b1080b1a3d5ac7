"""Alerting: rules (pure, vectorised), the alert lifecycle (pure) and the engine (the bus
consumer that also keeps device states and sends notifications). See docs/ALERTS.md.

The engine is imported from its module, `rackwatch.engine.alerts.engine` (it depends on
`rackwatch.engine.states`, which itself uses the rules of this package).
"""

from rackwatch.engine.alerts.lifecycle import Alert, AlertBook, AlertNotFound, AlertStatus
from rackwatch.engine.alerts.rules import Guard, Rule, RuleEvaluator, RuleKind, Transition

__all__ = [
    "Alert",
    "AlertBook",
    "AlertNotFound",
    "AlertStatus",
    "Guard",
    "Rule",
    "RuleEvaluator",
    "RuleKind",
    "Transition",
]
