"""``polycolbert serve`` start-up checks (no server is started when they fail)."""

from __future__ import annotations

from typer.testing import CliRunner

from polycolbert.cli import app
from polycolbert.server.auth import load_keys
from polycolbert.server.cross_site import is_loopback


def test_refuses_public_bind_without_keys(monkeypatch):
    monkeypatch.delenv("POLYCOLBERT_API_KEYS", raising=False)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_keys_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYCOLBERT_API_KEYS", " a , b,,")
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nc\n\n d \n")
    assert load_keys(keys_file) == ["a", "b", "c", "d"]
