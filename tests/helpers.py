"""Small helpers shared by test modules."""

from __future__ import annotations


def secret_of(token: str) -> str:
    """The secret part of `tk_<16 hex key id>_<secret>`; the secret may itself contain `_`."""
    prefix, key_id, secret = token.strip().split("_", 2)
    assert prefix == "tk"
    assert len(key_id) == 16
    return secret
