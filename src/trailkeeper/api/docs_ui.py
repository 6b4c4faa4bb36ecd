"""`/docs`: the API reference (Swagger UI) served entirely from the package.

The page and every asset it loads are same-origin: a vendored, pinned Swagger UI build
(static/swagger-ui/SOURCE) and a small start script. So `/docs` works with no network, sends no
API key to a third party, and its Content-Security-Policy can forbid every other origin.
Asset URLs carry a digest of their content, so they are cached for a year and a new build is
fetched as soon as the page names it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath, Parameter

ASSETS_PATH = "/assets"
CACHE_FOREVER = "public, max-age=31536000, immutable"
# Swagger UI styles elements inline and draws icons as data: URIs; nothing else is allowed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Litestar appends "; charset=utf-8" to text/ types.
_FILES = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "favicon.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "docs.js": ("docs.js", "text/javascript"),
}


# The `?v=` of an asset URL: its content digest, so that the URL changes with the content.
# Declared, so the route accepts it (every route refuses undeclared query parameters); unchecked.
CacheBuster = Annotated[str | None, Parameter(max_length=64)]


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    @property
    def version(self) -> str:
        """A short content digest: the cache-busting query of the asset's URL."""
        return hashlib.sha256(self.body).hexdigest()[:16]

    @property
    def integrity(self) -> str:
        """Subresource Integrity value, so a browser refuses an altered copy."""
        return "sha384-" + base64.b64encode(hashlib.sha384(self.body).digest()).decode()


@functools.cache
def asset(name: str) -> Asset | None:
    """The packaged asset called `name`, read once; None for any other name."""
    if name not in _FILES:
        return None
    path, media_type = _FILES[name]
    body = resources.files("trailkeeper.api").joinpath("static", *path.split("/")).read_bytes()
    return Asset(body, media_type)


def _asset(name: str) -> Asset:
    found = asset(name)
    assert found is not None, name
    return found


def serve_asset(name: FromPath[str], v: CacheBuster = None) -> Response[bytes]:
    found = asset(name)
    if found is None:
        raise NotFoundException(f"no documentation asset {name!r}")
    return Response(
        found.body,
        media_type=found.media_type,
        headers={"Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff"},
    )


def docs_router(path: str) -> Router:
    """The router Litestar fills with the docs page; every answer forbids other origins."""
    return Router(
        path,
        route_handlers=[],
        include_in_schema=False,
        response_headers=[ResponseHeader(name="Content-Security-Policy", value=CSP)],
    )


class LocalSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from packaged assets; the page references no other origin."""

    def __init__(self, openapi_url: str = "/openapi.json") -> None:
        super().__init__(path="/", favicon="", style="")
        self.openapi_url = openapi_url
        self.base = ""

    def receive_router(self, router: Router) -> None:
        router.register(
            get(f"{ASSETS_PATH}/{{name:str}}", include_in_schema=False, sync_to_thread=False)(
                serve_asset
            )
        )
        self.base = router.path

    def _url(self, name: str) -> str:
        return f"{self.base}{ASSETS_PATH}/{name}?v={_asset(name).version}"

    def _tag(self, name: str) -> str:
        url, sri = html.escape(self._url(name)), _asset(name).integrity
        if name.endswith(".css"):
            return f'<link rel="stylesheet" href="{url}" integrity="{sri}">'
        return f'<script src="{url}" integrity="{sri}"></script>'

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API reference</title>
<link rel="icon" type="image/png" href="{html.escape(self._url("favicon.png"))}">
{self._tag("swagger-ui.css")}
</head>
<body>
<noscript>The API reference needs JavaScript; the raw document is at
<a href="{html.escape(self.openapi_url)}">{html.escape(self.openapi_url)}</a>.</noscript>
<div id="swagger-ui" data-openapi-url="{html.escape(self.openapi_url)}"></div>
{self._tag("swagger-ui-bundle.js")}
{self._tag("docs.js")}
</body>
</html>
""".encode()
