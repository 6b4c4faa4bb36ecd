"""API keys: generation, hashing, constant-time checks and scopes.

A key looks like `tk_<key id>_<secret>`. Only SHA-256 of the whole token is stored: the secret
has 256 bits of entropy, so a slow password hash would add latency to every request and no
safety. The key id (not secret) finds the row; the hash is compared with `hmac.compare_digest`,
and a dummy comparison runs for unknown ids so timing does not reveal which ids exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

import msgspec

from trailkeeper.errors import InvalidInput, PermissionDenied, Unauthenticated
from trailkeeper.model import ApiKey, utc_now_ms

SCOPE_EVENTS_WRITE = "events.write"
SCOPE_EVENTS_READ = "events.read"
SCOPE_AUDIT_LOGS_READ = "audit-logs.read"
ALL_SCOPES = (SCOPE_EVENTS_WRITE, SCOPE_EVENTS_READ, SCOPE_AUDIT_LOGS_READ)

_TOKEN = re.compile(r"^tk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: one tenant, and what the key may do there."""

    tenant: str
    key_id: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"this API key lacks the `{scope}` scope")


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in ALL_SCOPES]
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(unknown)}; known scopes: {', '.join(ALL_SCOPES)}"
        )
    if not chosen:
        raise InvalidInput("a key needs at least one scope")
    return chosen


def new_key(tenant: str, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Make a key; returns the record to store and the token to show the user once."""
    key_id = secrets.token_hex(8)
    token = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id,
        tenant=tenant,
        name=name,
        scopes=validate_scopes(scopes),
        secret_hash=hash_token(token),
        created_at=utc_now_ms(),
    )
    return record, token


def key_id_of(token: str) -> str | None:
    """The key id inside a well-formed token, or None (the caller still runs `check_token`)."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def check_token(token: str, key: ApiKey | None) -> Principal:
    """Compare in constant time; every failure is the same 401 so nothing leaks."""
    expected = key.secret_hash if key is not None else _DUMMY_HASH
    ok = hmac.compare_digest(hash_token(token), expected)
    if key is None or not ok or key.revoked_at is not None:
        raise Unauthenticated("invalid, unknown or revoked API key")
    return Principal(tenant=key.tenant, key_id=key.id, scopes=frozenset(key.scopes))
