"""API keys: generation, hashing, constant-time checks and scopes.

A key looks like `tk_<key id>_<secret>`. Only SHA-256 of the whole token is stored: the secret
has 256 bits of entropy, so a slow password hash would add latency to every request and no
safety. The key id (not secret) finds the row; the hash is compared with `hmac.compare_digest`,
and a dummy comparison runs for unknown ids so timing does not reveal which ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trailkeeper.errors import InvalidInput, PermissionDenied, Unauthenticated
from trailkeeper.model import ApiKey, KeyPair, utc_now_ms

SCOPE_EVENTS_WRITE = "events.write"
SCOPE_EVENTS_READ = "events.read"
SCOPE_AUDIT_LOGS_READ = "audit-logs.read"
SCOPE_KEY_PAIRS_WRITE = "key-pairs.write"
SCOPE_VIEWER_CREATE = "viewer.create"
SCOPE_STREAMS_WRITE = "streams.write"  # manage streams (they carry every event out)
SCOPE_ERASURE_WRITE = "erasure.write"
SCOPE_LEGAL_HOLDS_WRITE = "legal-holds.write"
# Every scope a tenant's key may have.
ALL_SCOPES = (
    SCOPE_EVENTS_WRITE,
    SCOPE_EVENTS_READ,
    SCOPE_AUDIT_LOGS_READ,
    SCOPE_KEY_PAIRS_WRITE,
    SCOPE_VIEWER_CREATE,
    SCOPE_STREAMS_WRITE,
    SCOPE_ERASURE_WRITE,
    SCOPE_LEGAL_HOLDS_WRITE,
)
# What a new key gets unless scopes are chosen: erasing data and placing legal holds are
# granted only when asked for (docs/retention.md).
DEFAULT_SCOPES = tuple(
    s for s in ALL_SCOPES if s not in (SCOPE_ERASURE_WRITE, SCOPE_LEGAL_HOLDS_WRITE)
)
# The operator's scope: the admin API (tenants and their keys). Only keys of the reserved
# operator tenant hold it, beside at most `events.read` (to read and verify the operator log).
SCOPE_ADMIN = "admin"
SYSTEM_TENANT = "_system"
SYSTEM_SCOPES = (SCOPE_ADMIN, SCOPE_EVENTS_READ)
JWT_LEEWAY_SECONDS = 30
# The longest a key-pair JWT may live (exp - iat, and exp - now), leeway aside: what the Gr4vy
# SDKs sign by default (`expires_in=3600`). A longer-lived token is a 401.
JWT_MAX_LIFETIME_SECONDS = 3600
# `*.read` is Gr4vy's "every read scope"; here it means the one read a key pair can grant.
_JWT_READ_SCOPES = frozenset({SCOPE_AUDIT_LOGS_READ, "*.read"})

_TOKEN = re.compile(r"^tk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# An RFC 7638 SHA-256 thumbprint, base64url without padding: every key pair id has this form.
KEY_PAIR_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: one tenant, and what the key may do there."""

    tenant: str
    key_id: str
    scopes: frozenset[str]

    def require(self, *scopes: str) -> None:
        """Every one of `scopes`, or a 403 naming those missing (no wildcards: a key's scopes
        are from ALL_SCOPES, and `check_jwt` turns a JWT's into at most `audit-logs.read`)."""
        missing = [s for s in scopes if s not in self.scopes]
        if missing:
            raise PermissionDenied(lacking(missing))


def lacking(scopes: Iterable[str]) -> str:
    """The 403 message for a credential without `scopes` (also the OpenAPI examples')."""
    names = [f"`{s}`" for s in scopes]
    plural = "scope" if len(names) == 1 else "scopes"
    return f"this credential lacks the {', '.join(names)} {plural}"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def validate_scopes(scopes: Iterable[str], tenant: str = "") -> tuple[str, ...]:
    """The scopes a key of `tenant` may hold: `admin` only in the operator tenant, whose keys
    hold nothing that writes (the operator log is written by the service alone)."""
    chosen = tuple(dict.fromkeys(scopes))
    allowed = SYSTEM_SCOPES if tenant == SYSTEM_TENANT else ALL_SCOPES
    unknown = [s for s in chosen if s not in (*ALL_SCOPES, SCOPE_ADMIN)]
    if unknown:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(unknown)}; known scopes: "
            f"{', '.join((*ALL_SCOPES, SCOPE_ADMIN))}",
            details=[{"field": "scopes", "message": f"unknown scope {s!r}"} for s in unknown],
        )
    refused = [s for s in chosen if s not in allowed]
    if refused:
        where = (
            f"keys of the operator tenant {SYSTEM_TENANT} may only have"
            if tenant == SYSTEM_TENANT
            else f"only keys of the operator tenant {SYSTEM_TENANT} may have `admin`; "
            "a tenant's keys may have"
        )
        raise InvalidInput(
            f"scope(s) {', '.join(refused)} not allowed here: {where} {', '.join(allowed)}",
            details=[{"field": "scopes", "message": f"{s!r} not allowed"} for s in refused],
        )
    if not chosen:
        raise InvalidInput(
            "a key needs at least one scope",
            details=[{"field": "scopes", "message": "at least one scope"}],
        )
    return chosen


def new_key(
    tenant: str,
    name: str,
    scopes: Iterable[str],
    *,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; returns the record to store and the token to show the user once."""
    key_id = secrets.token_hex(8)
    token = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id,
        tenant=tenant,
        name=name,
        scopes=validate_scopes(scopes, tenant),
        secret_hash=hash_token(token),
        created_at=created_at or utc_now_ms(),
        expires_at=expires_at,
    )
    return record, token


def key_id_of(token: str) -> str | None:
    """The key id inside a well-formed token, or None (the caller still runs `check_token`)."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def check_token(token: str, key: ApiKey | None, now: datetime | None = None) -> Principal:
    """Compare in constant time; every failure is the same 401 so nothing leaks. Only the
    holder of the right secret learns that the key expired or its tenant is deactivated."""
    expected = key.secret_hash if key is not None else _DUMMY_HASH
    ok = hmac.compare_digest(hash_token(token), expected)
    if key is None or not ok or key.revoked_at is not None:
        raise Unauthenticated("invalid, unknown or revoked API key")
    if key.expires_at is not None and key.expires_at <= (now or utc_now_ms()):
        raise Unauthenticated("this API key has expired")
    if not key.tenant_active:
        raise Unauthenticated(f"tenant {key.tenant!r} is deactivated")
    return Principal(tenant=key.tenant, key_id=key.id, scopes=frozenset(key.scopes))


# ---- key pairs and signed JWTs (the Gr4vy dialect's authentication) -----------------------


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """A P-521 public key (what ES512 needs) from PEM; a private key PEM is reduced to it."""
    data = pem.strip().encode()
    try:
        key: Any = (
            serialization.load_pem_private_key(data, password=None).public_key()
            if b"PRIVATE KEY" in data
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError):
        raise InvalidInput("public_key is not a PEM-encoded key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp521r1":
        raise InvalidInput("key pairs must be EC P-521 keys (ES512)")
    return key


def public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def jwk_thumbprint(key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint: what the Gr4vy SDKs put in the JWT `kid` header."""
    numbers = key.public_numbers()
    size = (key.curve.key_size + 7) // 8

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()

    members = {"crv": "P-521", "kty": "EC", "x": b64(numbers.x), "y": b64(numbers.y)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def generate_private_key() -> tuple[ec.EllipticCurvePublicKey, str]:
    """A new P-521 key pair: the public key, and the private key PEM (to show once)."""
    private = ec.generate_private_key(ec.SECP521R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private.public_key(), pem


def jwt_key_id(token: str) -> str | None:
    """The JWT's `kid` when it could be a key pair id (anything else can never match one, so
    it is not looked up: a NUL or an overlong kid is the same 401 as an unknown one)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) and KEY_PAIR_ID.match(kid) else None


def check_jwt(token: str, pair: KeyPair | None) -> Principal:
    """Verify an ES512 JWT from a registered key pair: signature, kid, exp, nbf, iat (integers,
    a bounded lifetime), scopes. It grants `audit-logs.read` at most."""
    if pair is None or pair.revoked_at is not None:
        raise Unauthenticated("unknown or revoked key pair (JWT kid) in this merchant account")
    try:
        claims = jwt.decode(
            token,
            key=load_public_key(pair.public_key),
            algorithms=["ES512"],
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "nbf", "scopes"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated("token is not valid yet (nbf/iat in the future)") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    _check_lifetime(claims, time.time())
    if not pair.tenant_active:  # told only to the holder of the private key
        raise Unauthenticated(f"merchant account {pair.tenant!r} is deactivated")
    scopes = claims.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Unauthenticated("token scopes must be a list of strings")
    # Key pairs exist for the Gr4vy dialect's one read: whatever a token claims (the SDK asks
    # for `*.read *.write` by default), it never gains anything else here.
    granted = frozenset({SCOPE_AUDIT_LOGS_READ}) if _JWT_READ_SCOPES & set(scopes) else frozenset()
    return Principal(tenant=pair.tenant, key_id=pair.id, scopes=granted)


def _check_lifetime(claims: dict[str, Any], now: float) -> None:
    """exp, iat and nbf are integers (NumericDate as the SDKs send it; PyJWT alone would take
    `"exp": "99999999999"` or `1e308`), and the token expires within the maximum lifetime."""
    for name in ("exp", "iat", "nbf"):
        value = claims[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise Unauthenticated(f"invalid token: `{name}` must be an integer (seconds)")
    longest = JWT_MAX_LIFETIME_SECONDS + JWT_LEEWAY_SECONDS
    if claims["exp"] - claims["iat"] > longest or claims["exp"] - now > longest:
        raise Unauthenticated(
            f"token lives too long: exp may be at most {JWT_MAX_LIFETIME_SECONDS} s after iat "
            "and after now"
        )
