"""Versioned schema migrations, applied with yoyo at start-up (idempotent, locked)."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

from trailkeeper.errors import Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def apply_migrations(yoyo_url: str, engine: str) -> None:
    """Bring the schema up to date; yoyo's lock keeps two starting servers from racing.
    A database that already holds tables of the same names that trailkeeper did not make
    (another application's) is refused whole: each migration runs in a transaction, so
    nothing of ours is left behind in it."""
    backend = get_backend(yoyo_url)
    try:
        migrations = read_migrations(str(MIGRATIONS / engine))
        with backend.lock():
            try:
                backend.apply_migrations(backend.to_apply(migrations))
            except Exception as exc:
                if "already exists" not in str(exc):
                    raise
                raise Unavailable(
                    f"not a trailkeeper database: {_first_line(exc)}, but trailkeeper did not "
                    "create it (point the database URL at an empty database or at a "
                    "trailkeeper one)"
                ) from None
    finally:
        # yoyo keeps its connection open for the backend's lifetime; the store never needs
        # it again, so do not hold a PostgreSQL connection (or a SQLite file) for nothing.
        backend.connection.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]
