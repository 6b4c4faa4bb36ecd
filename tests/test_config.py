"""Settings: environment, overrides, and clean errors for bad values."""

from __future__ import annotations

import base64
import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from trailkeeper.cli import main
from trailkeeper.config import SETTINGS, load_settings, load_settings_with_sources, redact_url
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
    ("LOG_FORMAT", "xml", "must be json or text"),
    ("METRICS_TOKEN", "short", "must be at least 16 characters"),
    ("METRICS_MAX_TENANTS", "-1", "must not be negative"),
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


# ---- config file ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trailkeeper.toml"
    path.write_text(text)
    return path


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'port = 9000\nhost = "0.0.0.0"\nlog_level = "DEBUG"\nrate_limit_burst = 50\n'
        'log_format = "text"\n',
    )
    settings, sources = load_settings_with_sources(
        {"TRAILKEEPER_HOST": "10.0.0.1", "TRAILKEEPER_PORT": "9100"}, config_file=path, port=9200
    )
    assert (settings.port, settings.host, settings.log_level) == (9200, "10.0.0.1", "debug")
    assert settings.rate_limit_burst == 50.0  # an integer is fine where a number is wanted
    assert settings.log_format == "text"
    assert sources["port"] == "flag"
    assert sources["host"] == "environment TRAILKEEPER_HOST"
    assert sources["log_level"] == f"file {path}"
    assert sources["secret"] == "default"


BAD_FILES = [
    ("prot = 80\n", "unknown setting 'prot' (did you mean 'port'?)"),
    ("[server]\nport = 80\n", "[server] is a table; settings are top-level keys"),
    ("servr = 1\n", "unknown setting 'servr'\x00"),  # not close to any: no suggestion
    ('port = "80"\n', "port must be an integer, got '80'"),
    ("port = 80.0\n", "port must be an integer, got 80.0"),
    ("port = true\n", "port must be an integer, got true"),
    ("port = 70000\n", "port must be between 1 and 65535"),
    ("db_timeout_seconds = nan\n", "db_timeout_seconds must be a number, got nan"),
    ('db_timeout_seconds = "5s"\n', "db_timeout_seconds must be a number, got '5s'"),
    ("db_timeout_seconds = 0\n", "db_timeout_seconds must be positive"),
    ("log_level = 3\n", "log_level must be a string, got 3"),
    ('log_format = "xml"\n', "log_format must be json or text"),
    ('metrics_token = "short"\n', "metrics_token must be at least 16 characters"),
    ("metrics_max_tenants = -1\n", "metrics_max_tenants must not be negative"),
    ("port = \n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        load_settings({}, config_file=path)
    exact = message.endswith("\x00")  # the whole message, nothing after it
    wanted = f"{path}: {message.rstrip(chr(0))}"
    assert caught.value.message == wanted if exact else caught.value.message.startswith(wanted)
    assert "\n" not in caught.value.message


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope\.toml: cannot read the config file"):
        load_settings({}, config_file=tmp_path / "nope.toml")


def test_the_environment_names_its_variable_over_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 9000\n")
    with pytest.raises(InvalidInput, match=r"^TRAILKEEPER_PORT must be between"):
        load_settings({"TRAILKEEPER_PORT": "0"}, config_file=path)


def test_cli_reads_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, 'prot = 80\ndatabase_url = "sqlite:///x.db"\n')
    result = CliRunner().invoke(main, ["--config", str(path), "tenants", "list"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: unknown setting 'prot' (did you mean 'port'?)\n"
    monkeypatch.setenv("TRAILKEEPER_CONFIG", str(path))
    assert CliRunner().invoke(main, ["serve"]).stderr.startswith(f"Error: {path}: unknown")


def test_config_show_masks_secrets_and_says_where_values_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("TRAILKEEPER_"):
            monkeypatch.delenv(name)
    path = write(
        tmp_path,
        'secret = "cursor-secret-0123456789"\n'
        'metrics_token = "metrics-token-0123456789"\n'
        'database_url = "postgresql://audit:hunter2hunter2@db:5432/tk"\n'
        'log_origin = "audit.example.com"\n',
    )
    seed = base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("TRAILKEEPER_SIGNING_KEY", seed)
    result = CliRunner().invoke(main, ["--config", str(path), "config", "show"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for secret in ("cursor-secret-0123456789", "metrics-token-0123456789", "hunter2", seed):
        assert secret not in out
    shown = tomllib.loads(out)  # the output is TOML
    assert set(shown) == set(SETTINGS)
    assert shown["secret"] == shown["metrics_token"] == shown["signing_key"] == "***"
    assert shown["database_url"] == "postgresql://audit:***@db:5432/tk"
    assert shown["log_origin"] == "audit.example.com"
    assert shown["port"] == 8000
    lines = dict(line.split(" = ", 1) for line in out.splitlines())
    assert lines["log_origin"].endswith(f"# file {path}")
    assert lines["signing_key"].endswith("# environment TRAILKEEPER_SIGNING_KEY")
    assert lines["port"].endswith("# default")
    flagged = CliRunner().invoke(main, ["--database-url", "sqlite:///y.db", "config", "show"])
    assert 'database_url = "sqlite:///y.db"  # flag' in flagged.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&sslpassword=s3cret&PASSWORD=s3cret#x",
            "postgresql://u@h/db?sslmode=require&sslpassword=***&PASSWORD=***#x",
        ),
        ("postgresql://u:s3/cr@et@h1,h2/db", "postgresql://u:***@h1,h2/db"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("host=h password=s3cret dbname=tk", "host=h password=*** dbname=tk"),
        ("host=h password = 's3 cret' dbname=tk", "host=h password = *** dbname=tk"),
        # Nothing to hide: shown as given.
        ("postgresql://postgres@localhost/tk", "postgresql://postgres@localhost/tk"),
        (
            "postgresql://h/db?user=a@b&sslmode=require",
            "postgresql://h/db?user=a@b&sslmode=require",
        ),
        ("sqlite:///data/trailkeeper.db", "sqlite:///data/trailkeeper.db"),
    ],
)
def test_redact_url_masks_every_password_and_nothing_else(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@127.0.0.1:1/db?password=s3cret",
        "postgresql://u:s3cret@127.0.0.1:1/db",
        "host=127.0.0.1 port=1 password=s3cret dbname=tk",
    ],
)
def test_no_command_prints_a_database_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/configuration.md: the password is never printed (config show, errors)."""
    monkeypatch.setenv("TRAILKEEPER_DATABASE_URL", url)
    monkeypatch.setenv("TRAILKEEPER_DB_TIMEOUT_SECONDS", "1")
    shown = CliRunner().invoke(main, ["config", "show"])
    assert shown.exit_code == 0
    assert "s3cret" not in shown.output
    assert redact_url(url) in shown.output
    failed = CliRunner().invoke(main, ["tenants", "list"])
    assert failed.exit_code == 1
    assert "s3cret" not in failed.output
    assert failed.stderr.count("\n") == 1, failed.stderr
