"""What the OpenAPI document says about each operation beyond its types.

Litestar derives schemas from the handlers' types. This adds what types cannot say: which error
statuses a route can really return (each in its dialect's own body, with an example rendered by
that dialect), an example of every request and success response, the media types of responses
that are not JSON, and no body for a 204. Route modules use it in their decorators only:

    @get("/x", responses=NATIVE.errors(401, 403), operation_class=documented(response=...))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, Schema

from trailkeeper.api.errors import ErrorBody, Renderer, render_native

# Why a route answers each status; the same words in every dialect.
ERROR_DESCRIPTIONS = {
    400: "Invalid request: bad JSON, field, query parameter or cursor (details name the field)",
    401: "Missing, malformed, unknown, expired or revoked credential",
    403: "The credential is valid but lacks the scope this route needs",
    404: "Not found (another tenant's resources are not found either)",
    409: "Conflict: the id exists with other content",
    413: "Request body larger than TRAILKEEPER_MAX_BODY_BYTES",
    429: "Rate limited: this credential sent too many requests; retry after `Retry-After` s",
    503: "Database unavailable or busy; safe to retry",
}
# One example error per status: (code, message, details), rendered by each dialect.
_EXAMPLE_ERRORS: dict[int, tuple[str, str, list[dict[str, Any]]]] = {
    400: (
        "invalid_request",
        "limit: Expected `int` <= 100",
        [{"field": "limit", "message": "Expected `int` <= 100", "in": "query"}],
    ),
    401: ("unauthenticated", "unknown or revoked API key", []),
    403: ("forbidden", "this credential lacks the scope events.read", []),
    404: ("not_found", "no event '01HZX3J5M2Q7R8S9T0V1W2X3Y4'", []),
    409: ("conflict", "event '01HZX3J5M2Q7R8S9T0V1W2X3Y4' exists with other content", []),
    413: ("payload_too_large", "request body is larger than this server accepts", []),
    429: ("rate_limited", "too many requests for this credential; retry in 1 s", []),
    503: ("unavailable", "database unavailable; retry later", []),
}


class JSONExample(Example):
    """An example whose value is kept as given: Litestar drops every null inside a value,
    which would make examples of nullable fields (`"previous_cursor": null`) invalid."""

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        schema["value"] = self.value
        return schema


@dataclass(frozen=True)
class Dialect:
    """A dialect's error body type and renderer, to document its errors as it sends them."""

    body: type
    render: Renderer

    def errors(
        self, *statuses: int, messages: Mapping[int, str] | None = None
    ) -> dict[int, ResponseSpec]:
        """The error responses of one route: exactly `statuses`, each with an example
        (`messages` replaces the example's message for a status, to fit the route)."""
        codes = {status: _EXAMPLE_ERRORS[status][0] for status in statuses}
        return {
            status: ResponseSpec(
                data_container=self.body,
                description=ERROR_DESCRIPTIONS[status],
                generate_examples=False,
                examples=[
                    Example(
                        summary=_EXAMPLE_ERRORS[status][0],
                        value=self.example(status, messages or {}),
                    )
                ],
            )
            for status, code in codes.items()
        }

    def example(self, status: int, messages: Mapping[int, str]) -> Any:
        """The body this dialect sends for `status` (the route's message where it has one)."""
        code, message, details = _EXAMPLE_ERRORS[status]
        if status in messages:
            message, details = messages[status], []
        response = self.render(status, code, message, details)
        return msgspec.to_builtins(response.content)


NATIVE = Dialect(ErrorBody, render_native)


@dataclass(frozen=True)
class Alternative:
    """A response body in a media type Litestar does not derive (CSV, NDJSON)."""

    media_type: str
    example: str
    schema: Schema


def documented(
    *,
    response: Any = None,
    responses: Mapping[str, Any] | None = None,
    request: Any = None,
    requests: Mapping[str, Any] | None = None,
    media: tuple[Alternative, ...] = (),
) -> type[Operation]:
    """An Operation class that completes what Litestar generated for one route.

    `response`/`responses` (named): the success response's example(s); `request`/`requests`:
    the JSON body's; `media`: replaces the success body with these media types. Error statuses
    the route does not declare (Litestar adds a 400 to any route with parameters) are removed.
    """
    response_examples = dict(responses or {}) or ({"example": response} if response else {})
    request_examples = dict(requests or {}) or ({"example": request} if request else {})

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            _complete(self, response_examples, request_examples, media)

    return DocumentedOperation


def _complete(
    operation: Operation,
    response_examples: dict[str, Any],
    request_examples: dict[str, Any],
    media: tuple[Alternative, ...],
) -> None:
    responses = operation.responses or {}
    for status, spec in list(responses.items()):
        if status.startswith("4") and _is_litestar_400(spec):
            del responses[status]
        elif status == "204":
            spec.content = None  # type: ignore[union-attr]
        elif status.startswith("2") and media:
            spec.content = {  # type: ignore[union-attr]
                alt.media_type: OpenAPIMediaType(schema=alt.schema, example=alt.example)
                for alt in media
            }
        elif status.startswith("2") and response_examples:
            for body in (spec.content or {}).values():  # type: ignore[union-attr]
                body.examples = _examples(response_examples)
    if request_examples and operation.request_body is not None:
        for body in operation.request_body.content.values():  # type: ignore[union-attr]
            body.examples = _examples(request_examples)


def _examples(values: dict[str, Any]) -> dict[str, Example | Any]:
    return {name: JSONExample(summary=name, value=value) for name, value in values.items()}


def _is_litestar_400(spec: Any) -> bool:
    """Litestar's own validation-error response, which no route here sends (ours is declared
    with its example; Litestar's has none)."""
    return not any(body.examples for body in (getattr(spec, "content", None) or {}).values())
