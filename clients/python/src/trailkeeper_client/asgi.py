"""ASGI middleware (FastAPI, Starlette, Litestar, any ASGI app): one RequestContext per request.

    app.add_middleware(AuditMiddleware, actor_resolver=lambda scope: ...)    # FastAPI, Starlette
    Litestar(..., middleware=[DefineMiddleware(AuditMiddleware, actor_resolver=...)])

`actor_resolver(scope)` is called when the request records its first event (so after your
authentication ran) and returns an Actor or None; e.g. `lambda scope: {"id": scope["user"].id}`
under Starlette's AuthenticationMiddleware, or read `scope["state"]` that your auth filled.
The request id is the incoming `X-Request-ID` (when well-formed) or a new UUIDv7, and is sent
back in the response's `X-Request-ID`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from trailkeeper_client._request import client_ip, user_agent
from trailkeeper_client.context import RequestContext, _current, request_id
from trailkeeper_client.models import Actor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AuditMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        actor_resolver: Callable[[Scope], Actor | None] | None = None,
        trust_forwarded: bool = False,
    ) -> None:
        """`trust_forwarded`: take the client IP from `X-Forwarded-For` (only behind a proxy
        that sets it; otherwise any caller could name any address)."""
        self.app, self.actor_resolver, self.trust_forwarded = app, actor_resolver, trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        context = self._context(scope)
        token = _current.set(context)
        try:
            await self.app(scope, receive, self._with_request_id(send, context))
        finally:
            _current.reset(token)

    def _context(self, scope: Scope) -> RequestContext:
        headers = _headers(scope)
        peer = scope.get("client")
        resolver = self.actor_resolver
        return RequestContext(
            ip=client_ip(
                peer[0] if peer else None, headers.get("x-forwarded-for"), self.trust_forwarded
            ),
            user_agent=user_agent(headers.get("user-agent")),
            request_id=request_id(headers.get("x-request-id")),
            actor_resolver=(lambda: resolver(scope)) if resolver else None,
        )

    @staticmethod
    def _with_request_id(send: Send, context: RequestContext) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and context.request_id:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", context.request_id.encode()))
                message["headers"] = headers
            await send(message)

        return sending


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers that matter here, decoded (the last one wins when repeated)."""
    wanted = {b"user-agent", b"x-forwarded-for", b"x-request-id"}
    return {
        name.lower().decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name.lower() in wanted
    }
