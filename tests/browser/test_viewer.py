"""The viewer in headless Chromium: open, search, page, detail, verify, export, expiry,
tenancy, XSS and framing. Screenshots go to docs/images (docs/viewer.md)."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from tests.browser.conftest import Embedder, screenshot
from trailkeeper.api import viewer
from trailkeeper.model import EventIn
from trailkeeper.service import AuditService

pytestmark = pytest.mark.sqlite_only
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
XSS_ACTION = "<script>window.__xss = 1</script>"
XSS_NAME = '"><img src=x onerror="window.__xss = 2">'


def _event(n: int, **fields: Any) -> EventIn:
    base: dict[str, Any] = {
        "id": f"evt-{n:03d}",
        "action": "invoice.created" if n % 3 else "invoice.deleted",
        "actor": {"id": f"u-{n % 4}", "name": f"User {n % 4}", "email": f"user{n % 4}@example.com"},
        "target": {"type": "invoice", "id": f"inv-{n}", "name": f"Invoice {n}"},
        "source": "billing",
        "occurred_at": (START + timedelta(minutes=n)).isoformat(),
        "metadata": {"amount": n + 0.5, "outcome": "success", "note": "café ☕ \u2028"},
    }
    base.update(fields)
    return msgspec.convert(base, EventIn)


@pytest.fixture
def events(service: AuditService) -> AuditService:
    """45 events for acme (three pages of 20), one for globex."""
    service.ingest("acme", [_event(n) for n in range(45)])
    service.ingest("globex", [_event(900, action="globex.secret")])
    return service


def _open(page: Any, base_url: str, service: AuditService, **options: Any) -> str:
    _, path, _ = viewer.mint(service, "acme", **options)
    page.goto(base_url + path)
    return path


def _rows(page: Any) -> list[str]:
    page.wait_for_selector("#rows tr")
    return [str(t) for t in page.locator("#rows tr td:nth-child(3)").all_inner_texts()]


def test_open_with_a_token_shows_events_newest_first_and_drops_the_token(
    page: Any, base_url: str, events: AuditService
) -> None:
    _open(page, base_url, events)
    actions = _rows(page)
    assert len(actions) == 20
    first_time = page.locator("#rows tr td").first
    assert first_time.get_attribute("title") == "UTC: 2026-01-05T09:44:00.000Z"  # newest
    assert "token" not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == viewer.COOKIE)
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/viewer"
    painted = page.evaluate("performance.getEntriesByName('rows-painted')[0].startTime")
    print(f"\nfirst rows painted {painted:.0f} ms after navigation start (45 events)")
    screenshot(page, "list")


def test_search_filter_and_a_syntax_error_shown_inline(
    page: Any, base_url: str, events: AuditService
) -> None:
    _open(page, base_url, events)
    _rows(page)
    page.fill("#search", "action:invoice.deleted")
    page.press("#search", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 15")
    assert set(_rows(page)) == {"invoice.deleted"}
    page.fill("#filters input[data-field='actor']", "u-0")
    page.press("#search", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 4")
    actors = page.locator("#rows tr td:nth-child(2)").all_inner_texts()
    assert set(actors) == {"User 0 (u-0)"}
    page.fill("#filters input[data-field='actor']", "")
    page.fill("#search", 'action:"unclosed')
    page.press("#search", "Enter")
    error = page.locator("#search-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "unterminated quote '\"unclosed' at position 8"
    screenshot(page, "search-error")
    page.fill("#search", "action:nothing.like.this")
    page.press("#search", "Enter")
    page.locator("#empty").wait_for(state="visible")
    assert "No events match" in page.locator("#empty").inner_text()
    screenshot(page, "empty")


def test_page_forward_and_back_with_buttons_and_keys(
    page: Any, base_url: str, events: AuditService
) -> None:
    _open(page, base_url, events)
    first = page.locator("#rows tr td").first.get_attribute("title")
    page.click("#older")
    page.wait_for_function(f"() => document.querySelector('#rows tr td').title !== {first!r}")
    second = page.locator("#rows tr td").first.get_attribute("title")
    page.keyboard.press("n")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 5")
    assert page.locator("#older").is_disabled()
    page.keyboard.press("p")
    page.wait_for_function(f"() => document.querySelector('#rows tr td').title === {second!r}")
    page.click("#newer")
    page.wait_for_function(f"() => document.querySelector('#rows tr td').title === {first!r}")
    assert page.locator("#newer").is_disabled()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    page.locator("#detail").wait_for(state="visible")
    assert page.locator("#detail-title").inner_text().endswith("evt-043")


def test_open_an_event_and_verify_it_then_see_a_tampered_one_fail(
    page: Any, base_url: str, events: AuditService, database_url: str
) -> None:
    _open(page, base_url, events)
    _rows(page)
    page.locator("#rows tr").first.click()
    page.locator("#detail").wait_for(state="visible")
    detail = json.loads(page.locator("#json").inner_text())
    assert detail["id"] == "evt-044"
    assert detail["metadata"]["amount"] == 44.5
    assert "target.name" in page.locator("#fields").inner_text()
    page.click("#detail-verify")
    result = page.locator("#verify-result.ok")
    result.wait_for()
    assert result.inner_text().startswith("Verified: this event is entry 44 of the 45-event log")
    screenshot(page, "verified")

    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET action = 'invoice.paid' WHERE id = 'evt-044'")
    page.reload()  # the session cookie is kept
    _rows(page)
    page.locator("#rows tr").first.locator("button.verify-row").click()
    bad = page.locator("#verify-result.bad")
    bad.wait_for()
    assert "does not match the leaf recorded in the log" in bad.inner_text()
    screenshot(page, "tampered")


def test_export_the_current_query_as_csv_and_jsonl(
    page: Any, base_url: str, events: AuditService
) -> None:
    _open(page, base_url, events)
    _rows(page)
    page.fill("#search", "action:invoice.deleted")
    page.press("#search", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 15")
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    with open(csv_download.value.path(), encoding="utf-8", newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header[:3] == ["id", "tenant", "occurred_at"]
    assert len(rows) == 15
    assert {row[header.index("action")] for row in rows} == {"invoice.deleted"}
    with page.expect_download() as jsonl_download:
        page.click("#export-jsonl")
    text = open(jsonl_download.value.path(), encoding="utf-8").read()  # noqa: SIM115
    exported = [json.loads(line) for line in text.split("\n") if line]
    assert len(exported) == 15
    assert {e["tenant"] for e in exported} == {"acme"}


def test_an_expired_link_says_so(page: Any, base_url: str, events: AuditService) -> None:
    _open(page, base_url, events, now=time.time() - 3600)
    page.locator("#notice").wait_for(state="visible")
    assert page.locator("#notice-title").inner_text() == "This link has expired"
    assert page.locator("#app").is_hidden()
    screenshot(page, "expired")


def test_a_link_for_one_tenant_never_shows_another(
    page: Any, base_url: str, events: AuditService
) -> None:
    _open(page, base_url, events)
    _rows(page)
    fetched = page.evaluate(
        """async () => {
            const one = await fetch('/viewer/api/events/evt-900');
            const all = await fetch('/viewer/api/export?format=jsonl');
            return [one.status, await all.text()];
        }"""
    )
    assert fetched[0] == 404
    assert "globex" not in fetched[1]
    assert fetched[1].count("\n") == 45


def test_a_pinned_link_shows_only_its_slice(page: Any, base_url: str, events: AuditService) -> None:
    _open(page, base_url, events, pinned_query="actor:u-1")
    assert len(_rows(page)) == 11
    assert "actor:u-1" in page.locator("#pinned").inner_text()
    page.fill("#search", "actor:u-2")  # ANDed with the pin: nothing
    page.press("#search", "Enter")
    page.locator("#empty").wait_for(state="visible")
    status = page.evaluate("async () => (await fetch('/viewer/api/events/evt-002')).status")
    assert status == 404


def test_event_fields_render_as_text_never_markup(
    page: Any, base_url: str, events: AuditService
) -> None:
    events.ingest(
        "acme",
        [
            _event(
                500,
                occurred_at=(START + timedelta(days=1)).isoformat(),
                action=XSS_ACTION,
                actor={"id": "u-x", "name": XSS_NAME},
                target={"type": "<b>bold</b>", "name": XSS_NAME},
                metadata={"html": "<iframe src=javascript:alert(1)>"},
            )
        ],
    )
    _open(page, base_url, events)
    assert _rows(page)[0] == XSS_ACTION
    page.locator("#rows tr").first.click()
    page.locator("#detail").wait_for(state="visible")
    assert XSS_NAME in page.locator("#fields").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#rows img, #detail img, #rows script, #detail iframe").count() == 0
    screenshot(page, "xss")


def test_framing_from_an_allowed_origin_works_and_from_another_is_refused(
    page: Any, base_url: str, events: AuditService, embedders: Callable[[], Embedder]
) -> None:
    allowed, refused = embedders(), embedders()
    _, path, _ = viewer.mint(events, "acme", allowed_origins=(allowed.origin,))
    page.goto(allowed.frame(base_url + path))
    frame = page.frame_locator("#v")
    frame.locator("#rows tr").first.wait_for()
    assert frame.locator("#rows tr").count() == 20
    screenshot(page, "embedded")

    other = page.context.new_page()
    other.goto(refused.frame(base_url + path))
    other.wait_for_function("() => document.getElementById('v').dataset.loaded === '1'")
    [child] = other.main_frame.child_frames
    assert child.url.startswith("chrome-error://")  # Chromium's page for a refused frame
    assert child.query_selector("#rows") is None
