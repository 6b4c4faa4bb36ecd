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


BAD_VALUES = [
    # integers
    ("PORT", "eighty", "must be an integer, got 'eighty'"),
    ("PORT", "", "must be an integer"),
    ("PORT", "80.5", "must be an integer"),
    ("PORT", "70000", "must be between 1 and 65535"),
    ("PORT", "0", "must be between 1 and 65535"),
    ("MAX_BODY_BYTES", "10", "must be at least 1024"),
    ("MAX_BODY_BYTES", "16MB", "must be an integer"),
    ("PG_POOL_SIZE", "0", "must be at least 1"),
    ("PG_POOL_SIZE", "ten", "must be an integer"),
    # numbers
    ("DB_TIMEOUT_SECONDS", "0", "must be positive"),
    ("DB_TIMEOUT_SECONDS", "5s", "must be a number, got '5s'"),
    ("DB_TIMEOUT_SECONDS", "nan", "must be a number"),
    ("CHECKPOINT_INTERVAL_SECONDS", "-1", "must not be negative"),
    ("CHECKPOINT_INTERVAL_SECONDS", "inf", "must be a number"),
    ("RATE_LIMIT_PER_SECOND", "-1", "must not be negative"),
    ("RATE_LIMIT_PER_SECOND", "lots", "must be a number"),
    ("RATE_LIMIT_BURST", "0.5", "must be at least 1"),
    ("CREDENTIAL_CACHE_SECONDS", "-0.1", "must not be negative"),
    # text with rules
    ("SQLITE_SYNCHRONOUS", "OFF", "must be FULL, EXTRA or NORMAL"),
    ("LOG_LEVEL", "loud", "must be debug, info, warning or error"),
    ("LOG_ORIGIN", "my log", "must be non-empty, without spaces"),
    ("LOG_ORIGIN", "", "must be non-empty"),
    ("SIGNING_KEY", "not base64!", "must be a base64-encoded 32-byte Ed25519 seed"),
    ("SIGNING_KEY", "AAAA", "must be a base64-encoded 32-byte Ed25519 seed"),
    ("SECRET", "short", "must be at least 16 characters"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    """docs/configuration.md: a one-line message naming the variable."""
    with pytest.raises(InvalidInput) as caught:
        load_settings({f"TRAILKEEPER_{name}": value})
    assert caught.value.message.startswith(f"TRAILKEEPER_{name} {message}"), caught.value.message


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES[::3])
@pytest.mark.parametrize("command", [["serve"], ["tenants", "list"], ["export"]])
def test_cli_reports_bad_settings_in_one_line(
    monkeypatch: pytest.MonkeyPatch, command: list[str], name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"TRAILKEEPER_{name}", value)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {result.stderr.removeprefix('Error: ').splitlines()[0]}\n"
    assert f"TRAILKEEPER_{name} {message}" in result.stderr


def test_a_bad_port_flag_names_the_flag() -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "'--port'" in result.stderr
