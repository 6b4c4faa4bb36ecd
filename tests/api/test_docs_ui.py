"""`/docs` is served from the package: it must work with no network and load nothing from
another origin (issue 23, item 15)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from litestar.testing import TestClient

from tests.api.helpers import assert_error

_REFERENCES = re.compile(r"""\b(?:src|href|data-openapi-url)\s*=\s*["']([^"']*)["']""")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


def _page(client: TestClient[Any]) -> str:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_docs_page_references_only_same_origin_assets(client: TestClient[Any]) -> None:
    page = _page(client)
    references = _REFERENCES.findall(page)
    assert len(references) >= 5, page  # icon, stylesheet, two scripts, the document
    for url in references:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        assert url.startswith("/"), url
    # Not even in text the browser could fetch (e.g. a CDN URL in an inline style or script).
    assert "http://" not in page
    assert "https://" not in page
    assert "<script>" not in page  # no inline script: the policy below forbids them


def test_docs_page_forbids_other_origins(client: TestClient[Any]) -> None:
    policy = client.get("/docs").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    for sources in directives.values():
        assert "http" not in sources
        assert "*" not in sources


def test_docs_assets_are_served_with_type_cache_and_integrity(client: TestClient[Any]) -> None:
    page = _page(client)
    assets = [url for url in _REFERENCES.findall(page) if url.startswith("/docs/assets/")]
    assert {urlsplit(url).path.rsplit("/", 1)[1] for url in assets} == {
        "favicon.png",
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "docs.js",
    }
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        suffix = "." + urlsplit(url).path.rsplit(".", 1)[1]
        assert response.headers["content-type"] == _TYPES[suffix]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in response.headers["cache-control"]
        # The URL changes with the content, so caching it forever is safe.
        assert urlsplit(url).query == "v=" + hashlib.sha256(response.content).hexdigest()[:16]
    for match in re.finditer(r'(?:src|href)="([^"]+)" integrity="sha384-([^"]+)"', page):
        body = client.get(match[1]).content
        assert base64.b64decode(match[2]) == hashlib.sha384(body).digest()
    bundle = client.get(next(url for url in assets if "swagger-ui-bundle" in url))
    assert len(bundle.content) > 1_000_000  # the real bundle, not a stub
    assert b"SwaggerUIBundle" in bundle.content


def test_docs_page_points_at_the_served_document(client: TestClient[Any]) -> None:
    [url] = re.findall(r'data-openapi-url="([^"]+)"', _page(client))
    response = client.get(url)
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


def test_unknown_docs_asset_is_404(client: TestClient[Any]) -> None:
    for name in ("nope.js", "..%2F..%2Fapp.py", "SOURCE", "LICENSE"):
        assert_error(client.get(f"/docs/assets/{name}"), 404)
