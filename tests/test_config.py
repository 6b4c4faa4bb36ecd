"""Settings: environment, overrides, and clean errors for bad values."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from trailkeeper.cli import main
from trailkeeper.config import load_settings
from trailkeeper.errors import InvalidInput


def test_environment_then_overrides() -> None:
    env = {
        "TRAILKEEPER_PORT": "9000",
        "TRAILKEEPER_LOG_LEVEL": "DEBUG",
        "TRAILKEEPER_SQLITE_SYNCHRONOUS": "normal",
    }
    settings = load_settings(env, port=9001)
    assert settings.port == 9001
    assert settings.log_level == "debug"
    assert settings.sqlite_synchronous == "NORMAL"
    assert load_settings({}).database_url == "sqlite:///data/trailkeeper.db"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "TRAILKEEPER_PORT must be a int"),
        ("PORT", "70000", "port"),
        ("SQLITE_SYNCHRONOUS", "OFF", "sqlite_synchronous"),
        ("LOG_LEVEL", "loud", "log_level"),
        ("SECRET", "short", "secret"),
        ("MAX_BODY_BYTES", "10", "max_body_bytes"),
        ("DB_TIMEOUT_SECONDS", "0", "db_timeout_seconds"),
    ],
)
def test_bad_values_are_clear_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_settings({f"TRAILKEEPER_{name}": value})


def test_cli_reports_bad_settings_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAILKEEPER_PORT", "eighty")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "TRAILKEEPER_PORT" in result.stderr
    assert "Traceback" not in result.stderr
