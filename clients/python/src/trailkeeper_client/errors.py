"""What the client raises, and what it hands to the error callback."""

from __future__ import annotations

from typing import Any, Literal

from trailkeeper_client.models import Event

Reason = Literal["rejected", "dropped", "undelivered"]


class TrailkeeperError(Exception):
    """Base class of everything this package raises."""


class ApiError(TrailkeeperError):
    """The server refused a request (its error body: code, message, status, details)."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or []


class DeliveryError(TrailkeeperError):
    """Events recorded in the background that will not be stored, handed to `on_error`.

    `reason` is `rejected` (the server refused them: 4xx, see `error`), `dropped` (the buffer
    was full with `overflow="drop_oldest"`) or `undelivered` (the client closed, or the
    process exited, before the server could be reached in time).
    """

    def __init__(self, reason: Reason, events: list[Event], error: ApiError | None = None) -> None:
        what = f": {error}" if error else ""
        super().__init__(f"{len(events)} event(s) {reason}{what}")
        self.reason, self.events, self.error = reason, events, error
