"""`[alerts]` and `[[notifiers]]` in the settings file, and their conversion for the wiring."""

from __future__ import annotations

import asyncio
from datetime import time
from pathlib import Path

import pytest

from rackwatch.app import build_notifier_routes
from rackwatch.engine.alerts import RuleKind
from rackwatch.engine.notifiers.email import EmailNotifier
from rackwatch.engine.notifiers.file import FileNotifier
from rackwatch.engine.notifiers.slack import SlackNotifier
from rackwatch.engine.notifiers.webhook import WebhookNotifier
from rackwatch.errors import ConfigError
from rackwatch.model import Severity
from rackwatch.settings import build_alert_rules, load_settings

TOML = """
data_dir = "{data_dir}"

[alerts]
cooldown_seconds = 600

[[alerts.extra_rules]]
name = "cpu-temperature"          # replaces the default of the same name
metric = "cpu_temperature_celsius"
warning = 70
critical = 80
hysteresis = 2
for_seconds = 30

[[alerts.extra_rules]]
name = "gpu-hot"
metric = "gpu_temperature_celsius"
entity = "host/*/gpu*"
op = ">"
critical = 90

[[alerts.extra_rules]]
name = "disk-used"
metric = "disk_used_ratio"
warning = 0.85
enabled = false

[[notifiers]]
type = "console"
min_level = "critical"

[[notifiers]]
type = "file"
path = "alerts/alerts.log"

[[notifiers]]
type = "email"
host = "smtp.example.com"
username = "monitoring@example.com"
password = "app-password"
from_addr = "monitoring@example.com"
to_addrs = ["ops@example.com"]
entities = ["c01/**"]
window = {{ start = "22:00", end = "07:00", timezone = "Europe/Paris" }}

[[notifiers]]
type = "webhook"
url = "https://api.example.com/webhook/alerts"
headers = {{ Authorization = "Bearer token123" }}
retries = 5

[[notifiers]]
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
channel = "#monitoring"
"""


def test_defaults_cover_the_issue_rules() -> None:
    rules = {rule.name: rule for rule in build_alert_rules(load_settings().alerts)}
    assert (rules["memory-used"].warning, rules["memory-used"].critical) == (0.8, 0.9)
    assert (rules["disk-used"].warning, rules["disk-used"].critical) == (0.85, 0.95)
    inlet = rules["inlet-temperature-high"]
    assert (inlet.op, inlet.warning, inlet.critical) == (">", 27, 32)
    assert rules["inlet-temperature-low"].warning == 18
    assert rules["cpu-temperature"].clear_level(75) == 72
    assert rules["pdu-power-near-capacity"].kind is RuleKind.RATIO
    assert rules["cpu-temperature-rising"].kind is RuleKind.RATE
    assert rules["telemetry-absent"].kind is RuleKind.ABSENT
    assert rules["fan-stopped"].is_failure and str(rules["fan-stopped"].when) == "fan_level > 0"
    assert load_settings().notifiers == [] and load_settings().alerts.cooldown_seconds == 300


def test_a_settings_file_extends_rules_and_builds_notifiers(tmp_path: Path) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text(TOML.format(data_dir=tmp_path / "data"))
    settings = load_settings(config)
    rules = {rule.name: rule for rule in build_alert_rules(settings.alerts)}
    assert rules["cpu-temperature"].warning == 70 and rules["cpu-temperature"].for_s == 30
    assert rules["gpu-hot"].entity == "host/*/gpu*"
    assert "disk-used" not in rules and "memory-used" in rules
    assert settings.alerts.cooldown_seconds == 600

    routes = build_notifier_routes(settings.notifiers, settings.data_dir)
    console, file, email, webhook, slack = routes
    assert console.filter.min_level is Severity.CRITICAL
    assert isinstance(file.notifier, FileNotifier)
    assert file.notifier.path == tmp_path / "data" / "alerts" / "alerts.log"
    assert isinstance(email.notifier, EmailNotifier) and email.notifier.port == 587
    assert email.filter.entities == ("c01/**",)
    window = email.filter.window
    assert window is not None and (window.start, window.end) == (time(22), time(7))
    assert str(window.zone) == "Europe/Paris"
    assert isinstance(webhook.notifier, WebhookNotifier) and webhook.notifier.retries == 5
    assert isinstance(slack.notifier, SlackNotifier) and slack.notifier.name == "slack"
    # Secrets stay out of the settings' repr (logs, error messages).
    shown = repr(settings)
    assert "app-password" not in shown and "XXXX" not in shown and "token123" not in shown
    for route in routes:
        if isinstance(route.notifier, FileNotifier):
            asyncio.run(route.notifier.close())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[alerts.rules]]\nname = "x"\nmetric = "m"\nwarning = 80\ncritical = 70\n',
            "critical .70. must be above warning",
        ),
        ('[[alerts.rules]]\nname = "x"\nmetric = "m"\n', "warning or a critical"),
        (
            '[[alerts.rules]]\nname = "x"\nmetric = "fan_rpm"\ncritical = 1\nwhen = "on"\n',
            "fan_level > 0",
        ),
        (
            '[[notifiers]]\ntype = "console"\nwindow = { start = "22:00", end = "07:00", '
            'timezone = "Mars/Olympus" }\n',
            "unknown time zone",
        ),
        (
            '[[notifiers]]\ntype = "email"\nhost = "h"\nsecurity = "none"\nusername = "u"\n'
            'password = "p"\nfrom_addr = "a"\nto_addrs = ["b"]\n',
            "password in clear",
        ),
        ('[[notifiers]]\ntype = "webhook"\nurl = "ftp://x"\n', "http"),
        ('[[notifiers]]\ntype = "pager"\n', "notifiers.0"),
    ],
)
def test_bad_alert_settings_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_two_notifiers_with_one_name_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "twice.toml"
    config.write_text('[[notifiers]]\ntype = "console"\n[[notifiers]]\ntype = "console"\n')
    settings = load_settings(config)
    with pytest.raises(ConfigError, match="unique name"):
        build_notifier_routes(settings.notifiers, tmp_path)


def test_silence_and_notifier_stop_settings_are_bounded_and_wired(tmp_path: Path) -> None:
    from rackwatch import app
    from rackwatch.engine.notifiers import SPOOL_FILE

    for bad in (
        {"control": {"source_silence_seconds": 0}},
        {"alerts": {"notifier_drain_seconds": -1}},
        {"alerts": {"notifier_spool_max": 0}},
    ):
        with pytest.raises(ConfigError):
            load_settings(data_dir=tmp_path, **bad)
    fast = load_settings(data_dir=tmp_path, twin={"speed": 600.0})
    assert app.silence_policy(fast).timeout_s == 5.0  # 30 s of twin time is 0.05 s: the floor
    assert app.silence_policy(load_settings(data_dir=tmp_path)).timeout_s == 30.0
    slow = load_settings(data_dir=tmp_path, twin={"speed": 0.5})
    assert app.silence_policy(slow).timeout_s == 60.0
    chosen = load_settings(
        data_dir=tmp_path, twin={"speed": 600.0}, control={"source_silence_seconds": 12}
    )
    assert (app.silence_policy(chosen).timeout_s, app.silence_policy(chosen).speed) == (12, 600)
    engine = app.build_alert_engine(chosen, app.MemoryBus(), app.SeriesRegistry())
    assert engine.watch is not None and engine.watch.policy.timeout_s == 12
    assert engine.dispatcher.spool is not None
    assert engine.dispatcher.spool.path == tmp_path / SPOOL_FILE
