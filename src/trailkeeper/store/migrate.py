"""Versioned schema migrations, applied with yoyo at start-up (idempotent, locked)."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).parent / "migrations"


def apply_migrations(yoyo_url: str, engine: str) -> None:
    """Bring the schema up to date; yoyo's lock keeps two starting servers from racing."""
    backend = get_backend(yoyo_url)
    try:
        migrations = read_migrations(str(MIGRATIONS / engine))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
    finally:
        # yoyo keeps its connection open for the backend's lifetime; the store never needs
        # it again, so do not hold a PostgreSQL connection (or a SQLite file) for nothing.
        backend.connection.close()
