"""One typed settings object: defaults < TOML file (`--config`) < `RACKWATCH_*` environment
variables (nested with `__`, e.g. `RACKWATCH_TWIN__SEED=7`) < command-line options.

Only `app` and `cli` read settings; every other part receives plain arguments.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rackwatch.errors import ConfigError

DAY_S = 86_400


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TwinSettings(_Section):
    scenario: str = "very-large"
    """A preset (small, medium, large, very-large) or a named test protocol."""
    seed: int = 0
    clusters: int = Field(1, ge=1, le=1000)
    speed: float = Field(1.0, gt=0, le=1_000_000)
    """Simulated seconds per wall second in `rackwatch run`."""
    random_fault_mtbf_days: float | None = Field(None, gt=0)
    """Also draw random failures (fans, disks, sensors) from Weibull lifetimes with this mean
    time between failures per entity; None: only the scenario's scheduled faults."""


class StoreSettings(_Section):
    raw_retention_days: float = Field(7, gt=0)
    minute_retention_days: float = Field(90, gt=0)
    hour_retention_days: float = Field(5 * 365, gt=0)


class ServerSettings(_Section):
    """The HTTP server of `rackwatch run`: REST, WebSocket, /metrics and the dashboard."""

    host: str = "127.0.0.1"
    """Loopback by default: other machines reach it only when you say so (0.0.0.0)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """0 picks a free port (printed on start)."""
    ws_client_limit: int = Field(default=1000, ge=1, le=100_000)
    ws_send_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    """A WebSocket client that takes no message for this long is disconnected."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RACKWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("rackwatch-data")
    twin: TwinSettings = TwinSettings()
    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (pydantic's signature)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_toml_path))
        return tuple(sources)


_toml_path: Path | None = None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise ConfigError saying which value is wrong and where it came from.

    `overrides` are nested dicts of command-line values; None values are ignored.
    """
    global _toml_path
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config} does not exist: check the --config path")
        try:
            tomllib.loads(config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from exc
    _toml_path = config
    try:
        return Settings(**_drop_none(overrides))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        where = f" (from {config}, RACKWATCH_* variables or options)" if config else ""
        raise ConfigError(f"invalid settings{where}: {problems}") from exc
    finally:
        _toml_path = None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                cleaned[key] = nested
        elif value is not None:
            cleaned[key] = value
    return cleaned
