"""trailkeeper-client: send audit events to trailkeeper in the background, read them back.

from trailkeeper_client import Client
audit = Client("http://127.0.0.1:8000", "tk_...")
audit.record("user.login", actor={"id": "user-1"})
"""

from trailkeeper_client._batcher import Stats
from trailkeeper_client._retry import RetryPolicy
from trailkeeper_client._uuid7 import uuid7
from trailkeeper_client.client import AsyncClient, Client, Filters
from trailkeeper_client.context import RequestContext, current, request_context, set_actor
from trailkeeper_client.errors import ApiError, DeliveryError, TrailkeeperError
from trailkeeper_client.models import (
    Actor,
    ApiKey,
    Context,
    CreatedKey,
    Event,
    Page,
    StoredEvent,
    Target,
    Tenant,
    TenantPage,
)

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ApiError",
    "ApiKey",
    "AsyncClient",
    "Client",
    "Context",
    "CreatedKey",
    "DeliveryError",
    "Event",
    "Filters",
    "Page",
    "RequestContext",
    "RetryPolicy",
    "Stats",
    "StoredEvent",
    "Target",
    "Tenant",
    "TenantPage",
    "TrailkeeperError",
    "current",
    "request_context",
    "set_actor",
    "uuid7",
]
