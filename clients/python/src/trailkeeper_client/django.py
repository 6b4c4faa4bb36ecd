"""Django middleware: one RequestContext per request.

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "trailkeeper_client.django.AuditMiddleware", ...]

The actor is `request.user` (id = primary key, name = username, email) unless the setting
`TRAILKEEPER_ACTOR_RESOLVER` names another callable (object or dotted path) taking the request
and returning an Actor or None. It is resolved when the request records its first event.
`TRAILKEEPER_TRUST_X_FORWARDED_FOR = True` takes the client IP from that header (only behind a
proxy that sets it). The request id is the incoming `X-Request-ID` (when well-formed) or a new
UUIDv7, and is sent back in the response's `X-Request-ID`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from trailkeeper_client._request import client_ip, user_agent
from trailkeeper_client.context import RequestContext, _current, request_id
from trailkeeper_client.models import Actor


def user_actor(request: Any) -> Actor | None:
    """The logged-in Django user as an actor; None for anonymous requests."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    actor: Actor = {"id": str(user.pk), "type": "user"}
    if name := user.get_username():
        actor["name"] = str(name)
    if email := getattr(user, "email", ""):
        actor["email"] = str(email)
    if getattr(user, "is_staff", False):
        actor["staff"] = True
    return actor


class AuditMiddleware:
    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        resolver = getattr(settings, "TRAILKEEPER_ACTOR_RESOLVER", user_actor)
        self.resolver: Callable[[Any], Actor | None] = (
            import_string(resolver) if isinstance(resolver, str) else resolver
        )
        self.trust_forwarded = bool(getattr(settings, "TRAILKEEPER_TRUST_X_FORWARDED_FOR", False))

    def __call__(self, request: Any) -> Any:
        meta = request.META
        context = RequestContext(
            ip=client_ip(
                meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), self.trust_forwarded
            ),
            user_agent=user_agent(meta.get("HTTP_USER_AGENT")),
            request_id=request_id(meta.get("HTTP_X_REQUEST_ID")),
            actor_resolver=lambda: self.resolver(request),
        )
        token = _current.set(context)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        if context.request_id and not response.has_header("X-Request-ID"):
            response["X-Request-ID"] = context.request_id
        return response
