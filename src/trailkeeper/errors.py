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
    # Which event of a batch broke a rule, where one did (its fields are named `events[n].x`):
    # for callers that map it back, as `import` does to a file's line.
    event_index: int | None = None

    @classmethod
    def from_msgspec(
        cls, message: str, where: str = "", whole: str = "body", **detail: str
    ) -> InvalidInput:
        """msgspec's 'Expected `str`, got `int` - at `$.events[0].action`' as a field error.
        `where` goes before the field (an event's place in its batch); `whole` names a value
        refused at its root."""
        text, _, at = message.partition(" - at `$")
        field = at.rstrip("`").lstrip(".")
        field = f"{where}.{field}" if where and field else where or field or whole
        return cls(f"{field}: {text}", details=[{"field": field, "message": text, **detail}])


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        """Every cursor error is about the `cursor` query parameter: its details say so."""
        named = [{"field": "cursor", "message": message, "in": "query"}]
        super().__init__(message, details=details or named)


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
