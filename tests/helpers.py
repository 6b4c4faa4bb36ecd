"""Small helpers shared by test modules."""

from __future__ import annotations

import sqlite3

import psycopg


def secret_of(token: str) -> str:
    """The secret part of `tk_<16 hex key id>_<secret>`; the secret may itself contain `_`."""
    prefix, key_id, secret = token.strip().split("_", 2)
    assert prefix == "tk"
    assert len(key_id) == 16
    return secret


def tamper(database_url: str, *statements: str) -> None:
    """Change the database behind trailkeeper's back, as an attacker with DB access would."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement)
