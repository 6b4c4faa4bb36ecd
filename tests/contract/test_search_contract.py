"""The search language against both engines: each query's results over a fixed set of events
are the hand-written expectation, and the Python model (`query.matches`) agrees with them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from trailkeeper.model import EventIn
from trailkeeper.query import Query, matches, parse_query
from trailkeeper.service import AuditService
from trailkeeper.store import Store

EVENTS: list[dict[str, Any]] = [
    {
        "id": "e1",
        "action": "user.login",
        "actor": {"id": "u1", "name": "Ada Lovelace", "email": "ada@x.io"},
        "source": "web",
        "occurred_at": "2026-01-10T10:00:00Z",
        "metadata": {"retries": 3, "plan": "pro"},
    },
    {
        "id": "e2",
        "action": "user.role_changed",
        "type": "user:role-changed",
        "actor": {"id": "u2", "name": "Bob Stone", "email": "bob@x.io"},
        "target": {"type": "user", "id": "u1", "name": "Ada Lovelace"},
        "source": "api",
        "occurred_at": "2026-01-20T00:00:00Z",
        "metadata": {"retries": "3", "admin": True},
    },
    {
        "id": "e3",
        "action": "invoice.created",
        "actor": {"id": "u1"},
        "target": {"type": "invoice", "id": "inv_1042", "name": "Invoice 1042"},
        "source": "api",
        "occurred_at": "2026-02-01T10:00:00Z",
        "metadata": {"admin": "true", "request": {"id": "r-1"}},
    },
    {
        "id": "e4",
        "action": "invoice.deleted",
        "outcome": "failure",
        "actor": {"id": "u3"},
        "target": {"type": "invoice", "id": "inv_1042"},
        "occurred_at": "2026-02-01T10:00:00.001Z",
        "metadata": {"retries": [3]},
    },
    {
        "id": "e5",
        "action": "users.list",
        "actor": {"id": "u2", "email": "bob@x.io"},
        "source": "web",
        "occurred_at": "2026-03-14T12:00:00Z",
    },
    {
        "id": "e6",
        "action": "user",
        "outcome": "failure",
        "actor": {"id": "svc", "name": "Role Changer"},
        "target": {"type": "workspace", "id": "ws-9", "name": "Ops Team"},
        "source": "web",
        "occurred_at": "2026-03-15T00:00:00Z",
        "metadata": {"plan": "team", "retries": 0},
    },
]
ALL = {"e1", "e2", "e3", "e4", "e5", "e6"}

CASES: list[tuple[str, set[str]]] = [
    ("", ALL),
    # qualifiers, OR within one
    ("actor:u1", {"e1", "e3"}),
    ("actor.id:u1,u3", {"e1", "e3", "e4"}),
    ("actor.email:ada@x.io", {"e1"}),
    ('actor.email:"bob@x.io"', {"e2", "e5"}),
    ("action:invoice.created,invoice.deleted", {"e3", "e4"}),
    ("target.type:invoice", {"e3", "e4"}),
    ("target.id:inv_1042 outcome:failure", {"e4"}),
    ("type:user:role-changed", {"e2"}),
    ('type:"user:role-changed"', {"e2"}),
    ("source:web", {"e1", "e5", "e6"}),
    ("outcome:failure", {"e4", "e6"}),
    ("outcome:Success", {"e1", "e2", "e3", "e5"}),
    ("action:a action:b", set()),
    # prefix: a range, not `user` itself nor `users.`
    ("action:user.*", {"e1", "e2"}),
    ("action:user.*,invoice.c*", {"e1", "e2", "e3"}),
    ("actor:u*", {"e1", "e2", "e3", "e4", "e5"}),
    # negation keeps events lacking the field
    ("-action:user.*", {"e3", "e4", "e5", "e6"}),
    ("-target.type:invoice", {"e1", "e2", "e5", "e6"}),
    ("-source:web", {"e2", "e3", "e4"}),
    ("-actor.email:ada@x.io", ALL - {"e1"}),
    ("-outcome:failure", {"e1", "e2", "e3", "e5"}),
    ("-action:user.login,users.list -source:api", {"e4", "e6"}),
    # time, to the millisecond
    ("after:2026-02-01", {"e3", "e4", "e5", "e6"}),
    ("before:2026-02-01T10:00:00.001Z", {"e1", "e2", "e3"}),
    ("occurred:2026-02-01", {"e3", "e4"}),
    ("occurred:>2026-02-01T10:00Z", {"e4", "e5", "e6"}),
    ("occurred:<=2026-01-20", {"e1", "e2"}),
    ("after:2026-03-01 before:2026-02-01", set()),
    ("after:9999-12-31T23:00-05:00", set()),
    ("occurred:<=9999-12-31", ALL),
    # metadata: text compares with strings, numbers and booleans; not arrays or objects
    ("metadata.retries:3", {"e1", "e2"}),
    ("-metadata.retries:3", {"e3", "e4", "e5", "e6"}),
    ("metadata.retries:0", {"e6"}),
    ("metadata.admin:true", {"e2", "e3"}),
    ("metadata.request.id:r-1", {"e3"}),
    ("metadata.request:r-1", set()),
    ("metadata.plan:pro,team", {"e1", "e6"}),
    ("metadata.missing:x", set()),
    # free text: actor name/email, target name, action, type; whole words, ANDed
    ("ada", {"e1", "e2"}),
    ("ADA lovelace", {"e1", "e2"}),
    ('"ada lovelace"', {"e1", "e2"}),
    ('"lovelace bob"', set()),
    ("invoice", {"e3", "e4"}),
    ("inv*", {"e3", "e4"}),
    ("1042", {"e3"}),
    ("role", {"e2", "e6"}),
    ('"role changed"', {"e2"}),
    ('"role chang*"', {"e2", "e6"}),
    ("-role", {"e1", "e3", "e4", "e5"}),
    ("ada -bob", {"e1"}),
    ("x.io", {"e1", "e2", "e5"}),
    ("user", {"e1", "e2", "e6"}),
    ("users", {"e5"}),
    ("zzz", set()),
    ("inv_1042", set()),  # target.id is not free text
    # everything together
    ("actor:u1 -outcome:failure after:2026-01-15", {"e3"}),
    ("action:user.* ada -metadata.admin:true", {"e1"}),
]


@pytest.fixture
def loaded(service: AuditService) -> AuditService:
    service.ingest("acme", [msgspec.convert(e, EventIn) for e in EVENTS])
    service.ingest("globex", [msgspec.convert(e, EventIn) for e in EVENTS[:2]])
    return service


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_each_query_selects_what_the_model_says(
    loaded: AuditService, store: Store, text: str, expected: set[str]
) -> None:
    query = parse_query(text)
    everything = list(store.iter_events("acme", Query()))
    assert {e.id for e in everything if matches(query, e)} == expected, "the model"
    listed = [e.id for e in store.iter_events("acme", query, chunk=2)]
    assert sorted(listed) == sorted(expected)
    page, _, _ = loaded.list_events("acme", query, 100, None, "native")
    assert {e.id for e in page.events} == expected
    exported = [msgspec.json.decode(line)["id"] for line in store.iter_event_json("acme", query)]
    assert exported == listed


def test_free_text_follows_an_undone_insert(store: Store, service: AuditService) -> None:
    """A batch that meets a stored id is undone and inserted again (SQLite deletes its rows):
    the full-text index must follow, or it would point at rows that are not there."""
    service.ingest("acme", [msgspec.convert(EVENTS[0], EventIn)])
    batch = [
        {**EVENTS[2], "id": "n1"},
        EVENTS[0],
        {**EVENTS[5], "id": "n2"},
    ]
    service.ingest("acme", [msgspec.convert(e, EventIn) for e in batch])
    assert {e.id for e in store.iter_events("acme", parse_query("invoice"))} == {"n1"}
    assert {e.id for e in store.iter_events("acme", parse_query("ops team"))} == {"n2"}
    assert {e.id for e in store.iter_events("acme", parse_query("ada"))} == {"e1"}
