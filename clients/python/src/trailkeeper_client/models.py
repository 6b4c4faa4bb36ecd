"""The event as trailkeeper's API speaks it (docs/events.md), as typed dictionaries.

Dictionaries rather than classes: what the caller builds is exactly what goes on the wire, and
the server's answers are returned as they come, with no second model to keep in step.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Required, TypedDict


class Actor(TypedDict, total=False):
    """Who did it. Only `id` is required."""

    id: Required[str]
    name: str
    email: str
    type: str
    staff: bool
    status: str


class Target(TypedDict, total=False):
    """What it was done to."""

    type: str
    id: str
    name: str
    email: str


class Context(TypedDict, total=False):
    """Where it came from."""

    ip: str
    user_agent: str


class Event(TypedDict, total=False):
    """One event as sent. The client fills in `id` (a UUIDv7) and `occurred_at` (the time
    `record` was called) when they are absent, so that a retried event is the same event."""

    action: Required[str]
    actor: Required[Actor]
    id: str
    type: str
    occurred_at: str
    target: Target
    source: str
    context: Context
    metadata: dict[str, Any]


class StoredEvent(TypedDict):
    """One event as trailkeeper returns it: every field present, absent values `None`."""

    id: str
    tenant: str
    occurred_at: str
    received_at: str
    action: str
    type: str | None
    actor: Actor
    target: Target | None
    source: str | None
    context: Context | None
    metadata: dict[str, Any] | None
    log_index: NotRequired[int]
    leaf_hash: NotRequired[str]


class Page(TypedDict):
    """One page of `GET /v1/events`."""

    items: list[StoredEvent]
    limit: int
    next_cursor: str | None
    previous_cursor: str | None


Overflow = Literal["block", "drop_oldest"]


class Tenant(TypedDict):
    """A tenant (a customer account) as the admin API returns it."""

    id: str
    name: str
    active: bool
    created_at: str
    deactivated_at: str | None


class TenantPage(TypedDict):
    """One page of `GET /v1/tenants`, ordered by id."""

    items: list[Tenant]
    limit: int
    next_cursor: str | None


class ApiKey(TypedDict):
    """An API key as listed: never its secret."""

    id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class CreatedKey(ApiKey):
    """A key just created: `key` is the secret (`tk_...`), returned this once only."""

    key: str
