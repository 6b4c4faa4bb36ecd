"""Opaque, tamper-proof keyset cursors.

A cursor is `base64url(payload || mac)`. The payload is the keyset position and the paging
direction; the MAC is HMAC-SHA256 over a *scope* (tenant, dialect and the exact filters) plus the
payload. A cursor edited by hand, minted for another tenant or reused with other filters fails the
MAC check and is rejected as a 400, without telling which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from trailkeeper.errors import InvalidCursor
from trailkeeper.model import Direction, Position
from trailkeeper.query import Query

_VERSION = 1
_MAC_BYTES = 16
_MAX_TOKEN_CHARS = 256
_DIRECTIONS = {Direction.OLDER: 0, Direction.NEWER: 1}
_BY_CODE = {code: direction for direction, code in _DIRECTIONS.items()}


def cursor_scope(tenant: str, dialect: str, query: Query) -> bytes:
    """What a cursor is bound to: it only decodes again for the same tenant, API and query
    (the filter parameters included: they are part of the query)."""
    return b"\x1f".join((tenant.encode(), dialect.encode(), query.canonical()))


class CursorCodec:
    """Encodes and checks cursors with one server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("cursor secret must be at least 16 bytes")
        self._secret = secret

    def encode(self, position: Position, direction: Direction, scope: bytes) -> str:
        payload = msgspec.msgpack.encode(
            (_VERSION, _DIRECTIONS[direction], position.occurred_ms, position.seq)
        )
        token = payload + self._mac(scope, payload)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def decode(self, token: str, scope: bytes) -> tuple[Position, Direction]:
        if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            raise InvalidCursor("cursor is malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor("cursor is malformed") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidCursor(
                "cursor is not valid for this query: it was altered, or it belongs to other "
                "filters, another API or another tenant"
            )
        try:
            version, code, occurred_ms, seq = msgspec.msgpack.decode(
                payload, type=tuple[int, int, int, int]
            )
        except msgspec.DecodeError:
            raise InvalidCursor("cursor is malformed") from None
        if version != _VERSION or code not in _BY_CODE:
            raise InvalidCursor("cursor is from an unsupported version")
        return Position(occurred_ms=occurred_ms, seq=seq), _BY_CODE[code]

    def _mac(self, scope: bytes, payload: bytes) -> bytes:
        digest = hmac.new(self._secret, scope + b"\x1e" + payload, hashlib.sha256).digest()
        return digest[:_MAC_BYTES]
