"""Settings, read once from defaults, a TOML file, the environment and CLI flags (in that
order, each overriding the one before).

Every setting is listed in `SETTINGS` with its default and meaning; `docs/configuration.md` is
checked against this table by the test suite, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from trailkeeper.errors import InvalidInput

ENV_PREFIX = "TRAILKEEPER_"


@dataclass(frozen=True)
class Settings:
    """Typed settings. Field names map to `TRAILKEEPER_<NAME>` environment variables."""

    database_url: str = "sqlite:///data/trailkeeper.db"
    host: str = "127.0.0.1"
    port: int = 8000
    secret: str = ""
    max_body_bytes: int = 16 * 1024 * 1024
    sqlite_synchronous: str = "FULL"
    pg_pool_size: int = 10
    db_timeout_seconds: float = 5.0
    log_level: str = "info"
    log_origin: str = "trailkeeper.local"
    signing_key: str = ""
    checkpoint_interval_seconds: float = 60.0
    purge_interval_seconds: float = 3600.0
    rate_limit_per_second: float = 100.0
    rate_limit_burst: float = 200.0
    credential_cache_seconds: float = 5.0
    log_format: str = "json"
    metrics_token: str = ""
    metrics_max_tenants: int = 50
    workers: int = 1
    redis_url: str = ""
    limit_concurrency: int = 1000
    keep_alive_seconds: int = 5
    header_timeout_seconds: float = 10.0
    shutdown_timeout_seconds: float = 30.0
    shutdown_drain_seconds: float = 0.0
    stream_poll_seconds: float = 0.2
    stream_lease_seconds: float = 30.0
    stream_retry_budget: int = 8
    stream_max_backoff_seconds: float = 60.0


SETTINGS: dict[str, str] = {
    "database_url": "Where events are stored: `sqlite:///path/to/file.db` or "
    "`postgresql://user:pass@host:5432/dbname`.",
    "host": "Interface `serve` binds to.",
    "port": "TCP port `serve` listens on.",
    "secret": "Key that signs pagination cursors. Empty: a random key is generated once and kept "
    "in the database, so every worker and restart agrees.",
    "max_body_bytes": "Largest request body accepted; larger bodies get 413 before being read.",
    "sqlite_synchronous": "SQLite `synchronous` pragma: FULL (default, survives power loss) or "
    "NORMAL (survives process crashes only, faster).",
    "pg_pool_size": "Maximum PostgreSQL connections per server process.",
    "db_timeout_seconds": "How long a request waits for a database connection or lock before "
    "failing with 503.",
    "log_level": "Log level: debug, info, warning or error.",
    "log_origin": "Name of this log in checkpoints: each tenant's origin is "
    "`<log_origin>/<tenant>`, and the checkpoint signing key is named after it. Use a name you "
    "own, e.g. `audit.example.com`.",
    "signing_key": "Ed25519 private key (32-byte seed, base64) that signs checkpoints. Empty: "
    "one is generated once and kept in the database. Set it to keep the key out of the database.",
    "checkpoint_interval_seconds": "How often `serve` signs a checkpoint for every tenant whose "
    "log grew (0: only on request).",
    "purge_interval_seconds": "How often `serve` purges events past their tenant's "
    "`retention_days` (0: only `trailkeeper purge`).",
    "rate_limit_per_second": "Requests per second allowed per API key or key pair: per server "
    "process, or across all of them with `redis_url` (0: no limit). Past it: 429 with "
    "Retry-After.",
    "rate_limit_burst": "Requests a key may make at once before the per-second rate applies.",
    "credential_cache_seconds": "How long `serve` keeps an API key or key pair it looked up, "
    "instead of reading it for every request. Revoking through this server applies at once; "
    "a revocation made elsewhere (another server process, the CLI) within this time. 0: read "
    "it for every request.",
    "log_format": "`json` (one JSON object per line, for log collectors) or `text` (for "
    "development). Also `serve --log-format`.",
    "metrics_token": "Bearer token that Prometheus must send to read `/metrics` (at least 16 "
    "characters). Empty: `/metrics` answers 404.",
    "metrics_max_tenants": "How many tenants get their own `tenant` label on per-tenant metrics, "
    'per server process (the first ones seen); the rest are counted as `tenant="_other"`. '
    "0: no per-tenant label.",
    "workers": "Server processes `serve` runs on this machine, sharing its port (also `serve "
    "--workers`). Each has its own database pool (`pg_pool_size`) and, without `redis_url`, "
    "its own rate limits. A worker that dies is started again.",
    "redis_url": "`redis://host:6379/0`: keep rate limits in Redis, so they hold across "
    "workers and hosts. Empty: per process, in memory. If Redis cannot be reached, each "
    "process falls back to its own in-memory limit (fail open, logged) and retries Redis "
    "a few seconds later.",
    "limit_concurrency": "Connections and requests one server process handles at once; past "
    "it, new requests get 503 at once instead of queueing (bounds a flood).",
    "keep_alive_seconds": "How long an idle keep-alive connection stays open between requests.",
    "header_timeout_seconds": "How long a client may take to send a request's line and "
    "headers; slower connections are closed (bounds slowloris clients).",
    "shutdown_timeout_seconds": "On SIGTERM, how long in-flight requests may take to finish "
    "before they are cancelled and the process exits.",
    "shutdown_drain_seconds": "On SIGTERM, how long to keep serving while `/healthz` answers "
    "503, so a load balancer takes this process out first (set it above the balancer's "
    "health-check interval times its fall count). 0: stop accepting at once.",
    "stream_poll_seconds": "How often `serve` looks for new events to push to each stream "
    "(docs/streams.md). 0: this process delivers no streams.",
    "stream_lease_seconds": "How long a server keeps a stream it delivers after it stopped "
    "renewing its lease (e.g. it died): another server takes the stream over after this.",
    "stream_retry_budget": "Failed deliveries in a row before a stream is marked `failing` (it "
    "keeps retrying, every `stream_max_backoff_seconds` at most).",
    "stream_max_backoff_seconds": "The longest wait between two attempts to deliver a batch "
    "(exponential backoff with jitter up to this).",
}

SECRET_SETTINGS = frozenset({"secret", "signing_key", "metrics_token"})
URL_SETTINGS = frozenset({"database_url", "redis_url"})
"""Never printed: `config show` masks them (and the password in `database_url`)."""


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, then `config_file`, then the environment, then explicit
    overrides (CLI flags)."""
    return load_settings_with_sources(environ, config_file=config_file, **overrides)[0]


def load_settings_with_sources(
    environ: Mapping[str, str] | None = None,
    *,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> tuple[Settings, dict[str, str]]:
    """Settings and, for each, where its value came from (`config show` prints both)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = {field.name: "default" for field in fields(Settings)}
    if config_file is not None:
        for name, value in read_config_file(Path(config_file)).items():
            values[name], sources[name] = value, f"file {config_file}"
    for field in fields(Settings):
        raw = env.get(_env(field.name))
        if raw is not None:
            values[field.name] = _coerce(field.name, raw, _kind(field.name))
            sources[field.name] = f"environment {_env(field.name)}"
    for name, value in overrides.items():
        if value is not None:
            values[name], sources[name] = value, "flag"
    settings = replace(Settings(), **values)
    settings = replace(
        settings,
        log_level=settings.log_level.lower(),
        log_format=settings.log_format.lower(),
        sqlite_synchronous=settings.sqlite_synchronous.upper(),
    )
    _validate(settings, lambda name: _describe(name, sources[name]))
    return settings, sources


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a TOML file sets, typed; errors name the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}") from None
    known = [field.name for field in fields(Settings)]
    values: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            raise InvalidInput(
                f"{path}: [{name}] is a table; settings are top-level keys (`port = 8000`), "
                "tables are not supported"
            )
        if name not in known:
            # Only a near miss is suggested (a typo), not any name that shares letters.
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInput(f"{path}: unknown setting {name!r}{hint}")
        values[name] = _from_toml(path, name, value)
    return values


def _from_toml(path: Path, name: str, value: Any) -> Any:
    """A TOML value as the setting's type: an int where a number is wanted is fine; a string
    for a number, or a bool for anything, is refused rather than guessed."""
    kind = _kind(name)
    ok = (
        isinstance(value, str)
        if kind is str
        else isinstance(value, int | float) and not isinstance(value, bool)
    )
    if kind is int and isinstance(value, float):
        ok = False
    if kind is float and ok and not math.isfinite(value):
        ok = False
    if not ok:
        wanted = _KIND_NAMES.get(kind, "a string")
        raise InvalidInput(f"{path}: {name} must be {wanted}, got {_toml_text(value)}")
    return kind(value)


def _toml_text(value: Any) -> str:
    """A value as TOML spells it (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _kind(name: str) -> type:
    return type(getattr(Settings(), name))


_KIND_NAMES = {int: "an integer", float: "a number"}


def _coerce(name: str, raw: str, kind: type) -> Any:
    """The environment's text as the setting's type; errors name the variable."""
    if kind is str:
        return raw
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or (kind is float and not math.isfinite(value)):
        raise InvalidInput(f"{_env(name)} must be {_KIND_NAMES[kind]}, got {raw!r}")
    return value


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _describe(name: str, source: str) -> str:
    """How an error names a setting: as it was given (variable, file key or flag)."""
    if source.startswith("file "):
        return f"{source.removeprefix('file ')}: {name}"
    if source == "flag":
        return "--" + name.replace("_", "-")
    return _env(name)


# Connection parameters that hold a secret, in a URL's query string or a libpq keyword
# conninfo (`host=db password=...`): libpq's `password` and `sslpassword` (the client key's
# passphrase).
_SECRET_PARAMS = r"(?:password|sslpassword)"  # noqa: S105 - names, not a password
_QUERY_SECRET = re.compile(rf"(?i)([?&]{_SECRET_PARAMS}=)[^&#]*")
_MASK = r"\1***"
_CONNINFO_SECRET = re.compile(rf"(?i)(\b{_SECRET_PARAMS}\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")


def redact_url(url: str) -> str:
    """A database (or Redis) URL fit to print: a password in its userinfo, or `password=` /
    `sslpassword=` in its query string or keyword conninfo, becomes `***`; a URL without a
    password is returned unchanged. Every message that shows a URL goes through here."""
    if "://" not in url:
        return _CONNINFO_SECRET.sub(_MASK, url)
    scheme, rest = url.split("://", 1)
    # Userinfo ends at the last '@' before the query: a password with an unencoded '/' or '@'
    # is still masked whole (a path holding '@' is masked too: too much rather than too little).
    cut = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    credentials, at, after = rest[:cut].rpartition("@")
    if at and ":" in credentials:
        rest = f"{credentials.split(':', 1)[0]}:***@{after}{rest[cut:]}"
    return f"{scheme}://{_QUERY_SECRET.sub(_MASK, rest)}"


def masked(settings: Settings) -> dict[str, Any]:
    """Every setting's value, secrets replaced by `***` (empty ones stay empty)."""
    values: dict[str, Any] = {}
    for field in fields(Settings):
        value = getattr(settings, field.name)
        if field.name in SECRET_SETTINGS and value:
            value = "***"
        elif field.name in URL_SETTINGS:
            value = redact_url(value)
        values[field.name] = value
    return values


def _validate(settings: Settings, describe: Callable[[str], str]) -> None:
    """Rules each setting must follow; a failure names the setting as it was given: the
    environment variable, the file and key, or the flag (click checks most flags first)."""

    def _check(ok: bool, name: str, rule: str) -> None:
        if not ok:
            raise InvalidInput(f"{describe(name)} {rule}")

    _check(
        settings.sqlite_synchronous in {"FULL", "NORMAL", "EXTRA"},
        "sqlite_synchronous",
        "must be FULL, EXTRA or NORMAL",
    )
    _check(1 <= settings.port <= 65535, "port", "must be between 1 and 65535")
    _check(settings.max_body_bytes >= 1024, "max_body_bytes", "must be at least 1024")
    _check(settings.pg_pool_size >= 1, "pg_pool_size", "must be at least 1")
    _check(settings.db_timeout_seconds > 0, "db_timeout_seconds", "must be positive")
    _check(
        settings.log_level in {"debug", "info", "warning", "error"},
        "log_level",
        "must be debug, info, warning or error",
    )
    _check(settings.rate_limit_per_second >= 0, "rate_limit_per_second", "must not be negative")
    _check(settings.rate_limit_burst >= 1, "rate_limit_burst", "must be at least 1")
    _check(
        settings.credential_cache_seconds >= 0, "credential_cache_seconds", "must not be negative"
    )
    _check(settings.purge_interval_seconds >= 0, "purge_interval_seconds", "must not be negative")
    _check(
        settings.checkpoint_interval_seconds >= 0,
        "checkpoint_interval_seconds",
        "must not be negative",
    )
    _check(
        bool(settings.log_origin) and not any(c.isspace() or c == "+" for c in settings.log_origin),
        "log_origin",
        "must be non-empty, without spaces or '+'",
    )
    _check(
        not settings.signing_key or _seed_length(settings.signing_key) == 32,
        "signing_key",
        "must be a base64-encoded 32-byte Ed25519 seed",
    )
    _check(
        not settings.secret or len(settings.secret) >= 16,
        "secret",
        "must be at least 16 characters (or empty to generate one)",
    )
    _check(settings.log_format in {"json", "text"}, "log_format", "must be json or text")
    _check(
        not settings.metrics_token or len(settings.metrics_token) >= 16,
        "metrics_token",
        "must be at least 16 characters (or empty to turn /metrics off)",
    )
    _check(settings.metrics_max_tenants >= 0, "metrics_max_tenants", "must not be negative")
    _check(1 <= settings.workers <= 64, "workers", "must be between 1 and 64")
    _check(
        not settings.redis_url
        or settings.redis_url.startswith(("redis://", "rediss://", "unix://")),
        "redis_url",
        "must start with redis://, rediss:// or unix:// (or be empty)",
    )
    _check(settings.limit_concurrency >= 1, "limit_concurrency", "must be at least 1")
    _check(settings.keep_alive_seconds >= 1, "keep_alive_seconds", "must be at least 1")
    _check(settings.header_timeout_seconds > 0, "header_timeout_seconds", "must be positive")
    _check(settings.shutdown_timeout_seconds > 0, "shutdown_timeout_seconds", "must be positive")
    _check(settings.shutdown_drain_seconds >= 0, "shutdown_drain_seconds", "must not be negative")
    _check(settings.stream_poll_seconds >= 0, "stream_poll_seconds", "must not be negative")
    _check(settings.stream_lease_seconds >= 1, "stream_lease_seconds", "must be at least 1")
    _check(settings.stream_retry_budget >= 1, "stream_retry_budget", "must be at least 1")
    _check(
        settings.stream_max_backoff_seconds >= 1,
        "stream_max_backoff_seconds",
        "must be at least 1",
    )


def _seed_length(value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except ValueError:
        return -1
