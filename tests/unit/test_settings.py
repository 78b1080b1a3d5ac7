from pathlib import Path

import pytest

from rackwatch.errors import ConfigError
from rackwatch.settings import load_settings


def test_precedence_file_then_env_then_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rackwatch.toml"
    config.write_text('data_dir = "here"\n[twin]\nseed = 3\nclusters = 2\nspeed = 4\n')
    monkeypatch.setenv("RACKWATCH_TWIN__SEED", "9")
    settings = load_settings(config, twin={"speed": 8.0, "clusters": None})
    assert settings.data_dir == Path("here")
    assert (settings.twin.seed, settings.twin.clusters, settings.twin.speed) == (9, 2, 8.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[twin]\nsed = 3\n", "twin.sed"),
        ("[twin]\nclusters = 0\n", "twin.clusters"),
        ("[twin\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
