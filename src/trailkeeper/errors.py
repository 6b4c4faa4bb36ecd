"""One exception hierarchy for every layer.

Each error carries a stable machine-readable `code` and the HTTP status it maps to, so the API
dialects can render it in their own body shape without a table of special cases, and the CLI can
print it plainly. Storage translates driver errors into these at its boundary.
"""

from __future__ import annotations

from typing import Any


class TrailkeeperError(Exception):
    """Base error: `code` is for machines, `message` for people, `details` for field errors."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(TrailkeeperError):
    status = 400
    code = "invalid_request"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class Unauthenticated(TrailkeeperError):
    status = 401
    code = "unauthenticated"


class PermissionDenied(TrailkeeperError):
    status = 403
    code = "forbidden"


class NotFound(TrailkeeperError):
    status = 404
    code = "not_found"


class Conflict(TrailkeeperError):
    status = 409
    code = "conflict"


class Unavailable(TrailkeeperError):
    """The database cannot be reached or is overloaded; the client may retry."""

    status = 503
    code = "unavailable"
