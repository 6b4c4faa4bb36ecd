"""Settings, read once from the environment (and overridden by CLI flags).

Every setting is listed in `SETTINGS` with its default and meaning; `docs/configuration.md` is
checked against this table by the test suite, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
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
    rate_limit_per_second: float = 100.0
    rate_limit_burst: float = 200.0
    credential_cache_seconds: float = 5.0


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
    "rate_limit_per_second": "Requests per second allowed per API key or key pair, per server "
    "process (0: no limit). Past it: 429 with Retry-After.",
    "rate_limit_burst": "Requests a key may make at once before the per-second rate applies.",
    "credential_cache_seconds": "How long `serve` keeps an API key or key pair it looked up, "
    "instead of reading it for every request. Revoking through this server applies at once; "
    "a revocation made elsewhere (another server process, the CLI) within this time. 0: read "
    "it for every request.",
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, then the environment, then explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(Settings):
        raw = env.get(ENV_PREFIX + field.name.upper())
        if raw is None:
            continue
        values[field.name] = _coerce(field.name, raw, type(getattr(Settings(), field.name)))
    settings = replace(Settings(), **values)
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = replace(settings, **given)
    settings = replace(
        settings,
        log_level=settings.log_level.lower(),
        sqlite_synchronous=settings.sqlite_synchronous.upper(),
    )
    _validate(settings)
    return settings


_KIND_NAMES = {int: "an integer", float: "a number"}


def _coerce(name: str, raw: str, kind: type) -> Any:
    """The environment's text as the setting's type; errors name the variable."""
    try:
        value = kind(raw.strip()) if kind in _KIND_NAMES else kind(raw)
    except ValueError:
        value = None
    if value is None or (kind is float and not math.isfinite(value)):
        raise InvalidInput(f"{_env(name)} must be {_KIND_NAMES[kind]}, got {raw!r}")
    return value


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise InvalidInput(f"{_env(name)} {rule}")


def _validate(settings: Settings) -> None:
    """Rules each setting must follow; a failure names the environment variable (for the
    settings that also have a flag, click checks the flag's value first)."""
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


def _seed_length(value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except ValueError:
        return -1
