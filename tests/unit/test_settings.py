from pathlib import Path

import pytest

from rackwatch.errors import ConfigError
from rackwatch.settings import load_settings, offline_after_s


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


def test_offline_after_defaults_to_a_minute_and_must_outlast_two_collections(
    tmp_path: Path,
) -> None:
    assert offline_after_s(load_settings()) == 60.0
    slow_scrape = {"url": "http://127.0.0.1:9100/metrics", "interval_seconds": 45}
    assert offline_after_s(load_settings(scrape=[slow_scrape])) == 90.0  # not between two
    config = tmp_path / "rackwatch.toml"
    config.write_text("[host]\noffline_after_seconds = 9\n")
    with pytest.raises(ConfigError, match=r"host: .*at least twice interval_seconds \(5\)"):
        load_settings(config)
    config.write_text(
        '[host]\noffline_after_seconds = 30\n[[scrape]]\nurl = "http://127.0.0.1:9100/metrics"\n'
        "interval_seconds = 20\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"options\): Value error, \[host\] offline_after_seconds \(30\) .* http://127",
    ):
        load_settings(config)


def test_bus_defaults_to_memory_and_takes_a_nats_url() -> None:
    assert load_settings().bus.url == "memory"
    assert load_settings().bus.prefix == "rackwatch"
    nats = load_settings(bus={"url": "nats://10.0.0.5:4222", "prefix": "site-a"}).bus
    assert (nats.url, nats.prefix) == ("nats://10.0.0.5:4222", "site-a")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:4222", "use memory or nats://HOST:PORT"),
        ("memroy", "use memory or nats://HOST:PORT"),
        ("nats://:4222", "names no host"),
        ("nats://127.0.0.1", "needs a port from 1 to 65535"),
        ("nats://127.0.0.1:0", "needs a port from 1 to 65535"),
        ("nats://127.0.0.1:70000", "the port must be a number from 1 to 65535"),
        ("nats://127.0.0.1:x", "the port must be a number from 1 to 65535"),
        ("nats://127.0.0.1:4222/streams", "nothing after the port"),
    ],
)
def test_bad_bus_urls_are_refused_with_what_to_write(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"bus: .*" + message.replace(".", r"\.")):
        load_settings(bus={"url": url})


def test_bus_prefix_is_one_token() -> None:
    with pytest.raises(ConfigError, match=r"bus\.prefix"):
        load_settings(bus={"prefix": "a.b"})
