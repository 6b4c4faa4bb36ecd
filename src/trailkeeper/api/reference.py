"""What the OpenAPI document says about each operation beyond its types.

Litestar derives schemas from the handlers' types. This adds what types cannot say: which error
statuses a route can really return (each in its dialect's own body, with an example rendered by
that dialect), an example of every request and success response, the media types of responses
that are not JSON, and no body for a 204. Route modules use it in their decorators only:

    @get("/x", responses=NATIVE.errors(401, 403), operation_class=documented(response=...))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, Schema

from trailkeeper.api.errors import ErrorBody, Renderer, render_native
from trailkeeper.auth import lacking

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
    403: ("forbidden", lacking(["events.read"]), []),
    404: ("not_found", "no event '01HZX3J5M2Q7R8S9T0V1W2X3Y4'", []),
    409: ("conflict", "event '01HZX3J5M2Q7R8S9T0V1W2X3Y4' exists with other content", []),
    413: ("payload_too_large", "request body is larger than this server accepts", []),
    429: ("rate_limited", "too many requests for this credential; retry in 1 s", []),
    503: ("unavailable", "database unavailable; retry later", []),
}

# The 400 example of a route that takes a JSON body (`fit_error_examples`).
_BODY_400 = (
    "invalid_request",
    "body: Expected `object`, got `array`",
    [{"field": "body", "message": "Expected `object`, got `array`", "in": "body"}],
)


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
        self,
        *statuses: int,
        messages: Mapping[int, str] | None = None,
        scopes: tuple[str, ...] = (),
        body: bool = False,
    ) -> dict[int, ResponseSpec]:
        """The error responses of one route: exactly `statuses`, each with an example
        (`messages` replaces the example's message for a status, to fit the route). The 403
        names `scopes` and the 400 is about the body when `body`: `fit_error_examples` sets
        both from the route itself."""
        fixed = dict(messages or {})
        return {
            status: ErrorSpec(
                data_container=self.body,
                description=ERROR_DESCRIPTIONS[status],
                generate_examples=False,
                examples=[
                    Example(
                        summary=_EXAMPLE_ERRORS[status][0],
                        value=self.example(status, fixed, scopes, body),
                    )
                ],
                dialect=self,
                messages=fixed,
            )
            for status in statuses
        }

    def example(
        self,
        status: int,
        messages: Mapping[int, str],
        scopes: tuple[str, ...] = (),
        body: bool = False,
    ) -> Any:
        """The body this dialect sends for `status` (the route's message where it has one)."""
        code, message, details = _BODY_400 if status == 400 and body else _EXAMPLE_ERRORS[status]
        if status == 403 and scopes:
            message = lacking(scopes)
        if status in messages:
            message, details = messages[status], []
        response = self.render(status, code, message, details)
        return msgspec.to_builtins(response.content)


@dataclass
class ErrorSpec(ResponseSpec):
    """An error response that can be re-rendered to fit its route (`fit_error_examples`)."""

    dialect: Dialect | None = None
    messages: Mapping[int, str] = field(default_factory=dict)


def fit_error_examples(handler: Any) -> None:
    """Make a route's error examples its own: the 403 names the scopes its guard requires
    (a guard with a `scopes` attribute, as `shared.requires` makes), and a route that takes a
    JSON body shows a body error as its 400, not a query one."""
    responses: Mapping[int, ResponseSpec] | None = handler.responses
    if not responses:
        return
    guards = [guard for layer in handler.ownership_layers for guard in layer.guards or ()]
    scopes: tuple[str, ...] = next((g.scopes for g in guards if hasattr(g, "scopes")), ())
    body = "data" in handler.parsed_fn_signature.parameters
    refitted = dict(responses)
    for status, spec in responses.items():
        if isinstance(spec, ErrorSpec) and spec.dialect is not None:
            refitted[status] = spec.dialect.errors(
                status, messages=spec.messages, scopes=scopes, body=body
            )[status]
    handler.responses = refitted


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
        if status == "201" and not (getattr(spec, "headers", None) or {}).get("Location"):
            # Litestar's default says "URL follows", but no route here sends a Location.
            spec.description = "Created"
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
