"""The request an event is recorded in: who, from where, which request.

The middlewares set a RequestContext for each request; `record` reads it on the caller's
thread, so application code names only what it knows (`record("invoice.paid", target=...)`).
The actor is resolved lazily, when the first event is recorded, because authentication
usually happens after the middleware ran (in a dependency, a view decorator or later
middleware); a resolver that finds no user yet is asked again next time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from trailkeeper_client._uuid7 import uuid7
from trailkeeper_client.models import Actor

# What an incoming request id may look like to be reused (else a new one is made): the same
# rule as an event id, so it can also travel in metadata and logs without escaping.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}")


@dataclass
class RequestContext:
    """What the middleware knows about the current request."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    actor_resolver: Callable[[], Actor | None] | None = None
    actor: Actor | None = field(default=None)

    def resolve_actor(self) -> Actor | None:
        if self.actor is None and self.actor_resolver is not None:
            self.actor = self.actor_resolver()
        return self.actor


_current: ContextVar[RequestContext | None] = ContextVar("trailkeeper_request", default=None)


def current() -> RequestContext | None:
    """The context of the request being served, if any."""
    return _current.get()


def set_actor(actor: Actor) -> None:
    """Name the actor of the current request (e.g. once a login succeeded); no-op outside one."""
    context = _current.get()
    if context is not None:
        context.actor = actor


@contextmanager
def request_context(
    *,
    actor: Actor | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
    actor_resolver: Callable[[], Actor | None] | None = None,
) -> Iterator[RequestContext]:
    """A context outside a web request (a job, a command, a test): events recorded inside it
    get this actor, address and request id."""
    context = RequestContext(ip, user_agent, request_id, actor_resolver, actor)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def request_id(incoming: str | None) -> str:
    """The caller's request id when it is a sane one, else a new UUIDv7."""
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid7()
