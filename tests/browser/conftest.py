"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a live server.

Never `playwright install`: the system browser is used. Without it these tests are skipped
locally and fail under CI=true (`.ci/run` installs the `chromium` package when it is missing).
"""

from __future__ import annotations

import html
import http.server
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent.parent.parent / "docs" / "images"


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI needs it for the browser tests (.ci/run installs chromium)")
    pytest.skip(what)


# Package scope: Playwright's sync API keeps an asyncio loop running in the main thread while
# it is open, which would break `asyncio.run` in the tests that follow these.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the `playwright` package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield found
        found.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies from other tests) and page."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(service: AuditService, database_url: str) -> Iterator[str]:
    """The server, reached as http://localhost:<port> (localhost: a secure context, and the
    same site as the embedding pages the framing tests serve on other ports)."""
    settings = load_settings({}, database_url=database_url, checkpoint_interval_seconds=0)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service, settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="viewer-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("test server did not start")
        time.sleep(0.02)
    yield f"http://localhost:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def screenshot(page: Any, name: str) -> None:
    """Kept in docs/images (docs/viewer.md shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"viewer-{name}.png"))


class Embedder:
    """A site on another localhost port whose page frames a URL (a real server: Chromium
    refuses a localhost frame in a page it cannot place on the local network)."""

    def __init__(self) -> None:
        self.body = b""
        site = self

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://localhost:{self.server.server_address[1]}"

    def frame(self, url: str) -> str:
        """Frame `url` from now on; returns the page's URL."""
        self.body = (
            f'<!DOCTYPE html><h1>Embedder</h1><iframe id="v" src="{html.escape(url)}" '
            'width="1200" height="700" onload="this.dataset.loaded = \'1\'"></iframe>'
        ).encode()
        return self.origin + "/app"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def embedders() -> Iterator[Callable[[], Embedder]]:
    made: list[Embedder] = []

    def make() -> Embedder:
        made.append(Embedder())
        return made[-1]

    yield make
    for site in made:
        site.close()
