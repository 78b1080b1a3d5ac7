import stat
from pathlib import Path

import pytest

from rackwatch.errors import ConfigError
from rackwatch.tokens import TokenStore


def test_tokens_are_stored_hashed_and_private(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    secret, info = store.create("read", name="grafana")
    text = (tmp_path / "tokens.json").read_text()
    assert secret not in text and "grafana" in text
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    found = store.verify(secret)
    assert found == info and found.allows("read") and not found.allows("control")
    assert store.verify(secret + "x") is None


def test_control_implies_read_and_revoke_works(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    secret, info = store.create("control")
    assert info.allows("read") and info.allows("control")
    assert store.revoke(info.id) and store.verify(secret) is None
    assert not store.revoke(info.id)


def test_unknown_scope_and_corrupt_file_are_clear_errors(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(ConfigError, match="unknown scope 'admin'"):
        store.create("admin")
    (tmp_path / "tokens.json").write_text("{not json")
    with pytest.raises(ConfigError, match="rackwatch token create"):
        store.verify("rw_x")
