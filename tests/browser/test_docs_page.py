"""`/docs` renders in a real browser with no network beyond the server itself (issue 23, 15)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.sqlite_only


def test_docs_render_offline_from_the_server_alone(page: Any, base_url: str) -> None:
    own_host = urlsplit(base_url).netloc
    elsewhere: list[str] = []

    def only_the_server(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == own_host or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", only_the_server)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base_url}/docs")
    # Swagger UI draws one block per operation once it has fetched /openapi.json.
    page.wait_for_selector(".opblock", timeout=20_000)
    operations = page.locator(".opblock").count()
    spec = page.request.get(f"{base_url}/openapi.json").json()
    expected = sum(
        1
        for item in spec["paths"].values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    assert operations == expected
    assert page.get_by_text("/v1/events/batch").first.is_visible()
    assert elsewhere == [], f"the page asked for other origins: {elsewhere}"
    assert errors == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
