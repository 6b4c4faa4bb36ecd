"""The Store contract: every engine must pass exactly these tests (parametrized in conftest)."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import event_payload
from trailkeeper.api.native import EventView, to_view
from trailkeeper.errors import Conflict, InvalidInput
from trailkeeper.formats import event_document
from trailkeeper.ledger import canonical_event
from trailkeeper.model import (
    MAX_BATCH,
    Actor,
    ApiKey,
    Checkpoint,
    Direction,
    Event,
    EventFilter,
    EventIn,
    KeyPair,
    Position,
    Tenant,
    format_ms,
    from_ms,
    to_ms,
    utc_now_ms,
)
from trailkeeper.query import Query, parse_query
from trailkeeper.service import AuditService
from trailkeeper.store import Store, open_store
from trailkeeper.store.sqlite import SQLiteStore
from trailkeeper.validation import normalize_event
from trailkeeper.verifier import leaf_hash

NOW = datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)


def as_stored(event: Event) -> Event:
    """An event just ingested as it reads back: the same, with a leaf over its RFC 8785 bytes."""
    if event.leaf_hash is not None:
        assert event.leaf_hash == leaf_hash(canonical_event(event))
    return event


def listing(store: Store, *args: Any) -> list[tuple[Position, EventView]]:
    """`Store.list_events` with each event's keyset position and native view."""
    return [(Position.of(event), to_view(event)) for event in store.list_events(*args)]


def event_in(n: int, rng: random.Random | None = None, **overrides: object) -> EventIn:
    return msgspec.convert(event_payload(n, rng, **overrides), EventIn)


def seed(service: AuditService, tenant: str, count: int) -> None:
    service.ingest(tenant, [event_in(n) for n in range(count)])


def test_round_trip_keeps_every_field(store: Store, service: AuditService) -> None:
    payload = {
        "id": "evt-full",
        "action": "user.role_changed",
        "type": "user:role-changed",
        "occurred_at": "2022-07-05T22:30:24.662Z",
        "actor": {
            "id": "u1",
            "name": "Joe",
            "email": "joe@example.com",
            "type": "user",
            "staff": False,
            "status": "active",
        },
        "target": {"type": "user", "id": "u2", "name": "Jane", "email": "jane@example.com"},
        "source": "courier.studio",
        "context": {"ip": "2001:db8::1", "user_agent": "curl/8"},
        "metadata": {"role": {"from": "viewer", "to": "admin"}, "n": 1.5, "list": [1, None]},
    }
    given = msgspec.convert(payload, EventIn)
    [(stored, created)] = service.ingest("acme", [given])
    assert created
    fetched = store.get_event("acme", "evt-full")
    assert fetched == as_stored(stored)
    assert fetched is not None
    assert fetched.actor.staff is False
    assert fetched.occurred_at == datetime(2022, 7, 5, 22, 30, 24, 662000, tzinfo=UTC)
    assert fetched.metadata == payload["metadata"]
    assert fetched.context is not None
    assert fetched.context.ip == "2001:db8::1"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (EventIn(action=5, actor=Actor(id="u")), "events[1].action"),  # type: ignore[arg-type]
        (EventIn(action="a" * 257, actor=Actor(id="u")), "events[1].action"),
        (EventIn(action="a", actor=Actor(id="")), "events[1].actor.id"),
        (EventIn(action="a", actor=Actor(id="u"), id="x" * 129), "events[1].id"),
        (EventIn(action="a", actor=Actor(id="u"), metadata={"x": object()}), "events[1].metadata"),
        (EventIn(action="a", actor=Actor(id="u", name="\x00")), "events[1].actor.name"),
    ],
)
def test_events_built_in_python_are_checked_as_decoding_checks_json(
    store: Store, service: AuditService, bad: EventIn, field: str
) -> None:
    """msgspec checks types and lengths only when it decodes: the service checks every event
    the same way before it stores any (the Python API builds them without decoding), and
    stores none of the batch."""
    with pytest.raises(InvalidInput) as refused:
        service.ingest("acme", [event_in(1), bad])
    assert refused.value.details[0]["field"] == field
    assert list(store.iter_events("acme", Query())) == []


def test_same_id_same_content_is_not_stored_twice(store: Store, service: AuditService) -> None:
    [(first, created)] = service.ingest("acme", [event_in(1)])
    [(again, created_again)] = service.ingest("acme", [event_in(1)])
    assert created
    assert not created_again
    assert again == as_stored(first)
    assert len(list(store.iter_events("acme", Query()))) == 1


def test_same_id_other_content_conflicts_and_batch_stores_nothing(
    store: Store, service: AuditService
) -> None:
    service.ingest("acme", [event_in(1)])
    batch = [event_in(2), event_in(3), event_in(1, action="tampered")]
    with pytest.raises(Conflict):
        service.ingest("acme", batch)
    ids = [e.id for e in store.iter_events("acme", Query())]
    assert ids == ["evt-00001"]


def test_duplicate_ids_inside_one_batch(service: AuditService) -> None:
    results = service.ingest("acme", [event_in(5), event_in(5)])
    assert [created for _, created in results] == [True, False]
    assert results[0][0] == results[1][0]
    with pytest.raises(Conflict):
        service.ingest("acme", [event_in(6), event_in(6, action="other")])


def test_batch_mixing_stored_and_new_ids_keeps_the_log_gap_free(
    store: Store, service: AuditService
) -> None:
    """A retried batch first fails its optimistic insert on the stored id, then runs again
    with the lookup: the failed attempt must leave no trace (log index, leaf, rows)."""
    service.ingest("acme", [event_in(1), event_in(2)])
    results = service.ingest("acme", [event_in(3), event_in(1), event_in(4), event_in(3)])
    assert [(e.id, created) for e, created in results] == [
        ("evt-00003", True),
        ("evt-00001", False),
        ("evt-00004", True),
        ("evt-00003", False),
    ]
    stored = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)
    assert [e.log_index for e in stored] == [0, 1, 2, 3]
    assert [e.id for e in stored] == ["evt-00001", "evt-00002", "evt-00003", "evt-00004"]
    assert store.ledger_head("acme") == (4, service.checkpoint("acme").root)
    assert results[1][0].log_index == 0


def test_a_full_batch_is_stored_whole_and_in_order(store: Store, service: AuditService) -> None:
    """The largest batch (SQLite writes it as several multi-row statements), with a stored id
    in its very last row: the optimistic insert fails there and the batch runs again."""
    service.ingest("acme", [event_in(5000)])
    batch = [event_in(n) for n in range(MAX_BATCH - 1)] + [event_in(5000)]
    results = service.ingest("acme", batch)
    assert [created for _, created in results] == [True] * (MAX_BATCH - 1) + [False]
    stored = sorted(store.iter_events("acme", Query()), key=lambda e: e.log_index or 0)
    assert [e.id for e in stored] == ["evt-05000"] + [f"evt-{n:05d}" for n in range(MAX_BATCH - 1)]
    assert [e.log_index for e in stored] == list(range(MAX_BATCH))
    assert stored[1:] == [event for event, _ in results[:-1]]


def test_a_reused_id_is_a_replay_exactly_when_it_describes_the_same_event(store: Store) -> None:
    """Same content (metadata keys in any order, an empty target or context being none) and
    the same occurred_at, or none given both times: a replay. Anything else: a conflict."""
    first_received = 1_717_243_200_000
    times = iter(from_ms(first_received + 1000 * n) for n in range(100))
    service = AuditService(store, clock=lambda: next(times))  # a second between attempts
    service.create_tenant("acme")
    base = {"id": "r1", "action": "a", "actor": {"id": "u"}, "metadata": {"a": 1, "b": [1, 2]}}

    def created(events: list[dict[str, object]]) -> list[bool]:
        batch = [msgspec.convert({**base, **changes}, EventIn) for changes in events]
        return [new for _, new in service.ingest("acme", batch)]

    assert created([{}]) == [True]
    assert created([{}]) == [False]  # occurred_at omitted again, received a second later
    assert created([{"metadata": {"b": [1, 2], "a": 1}}]) == [False]
    assert created([{"target": {}, "context": {}}]) == [False]
    assert created([{"id": "r2"}, {"id": "r2", "metadata": {"b": [1, 2], "a": 1}}]) == [
        True,
        False,
    ]
    for changes in (
        {"occurred_at": format_ms(first_received)},  # given now, omitted at first
        {"metadata": {"a": 1.0, "b": [1, 2]}},
        {"metadata": {"a": 1, "b": [2, 1]}},
        {"actor": {"id": "u", "name": "U"}},
        {"type": "t"},
        {"source": "s"},
        {"target": {"id": "x"}},
        {"context": {"ip": "203.0.113.9"}},
    ):
        with pytest.raises(Conflict):
            created([changes])
        with pytest.raises(Conflict):
            created([{"id": "r3"}, {"id": "r3", **changes}])
    timed = {"id": "t1", "occurred_at": "2024-01-01T02:00:00+02:00"}
    assert created([timed]) == [True]
    assert created([{**timed, "occurred_at": "2024-01-01T00:00:00.000Z"}]) == [False]
    with pytest.raises(Conflict):
        created([{"id": "t1"}])  # omitted now, given at first
    assert [e.id for e in store.iter_events("acme", Query())] == ["t1", "r1", "r2"]


def test_sqlite_builds_before_3_32_take_full_batches_and_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.32 allows 999 parameters per statement (since then 32,766): inserts
    and the replay lookup must size their statements by the build's limit."""
    connect = SQLiteStore._connect

    def old_build(self: SQLiteStore, *, readonly: bool = False) -> sqlite3.Connection:
        conn = connect(self, readonly=readonly)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return conn

    monkeypatch.setattr(SQLiteStore, "_connect", old_build)
    service = AuditService(open_store(f"sqlite:///{tmp_path / 'old.db'}"))
    service.create_tenant("acme")
    batch = [event_in(n) for n in range(MAX_BATCH)]
    assert all(created for _, created in service.ingest("acme", batch))
    replayed = service.ingest("acme", batch)  # 1000 stored ids to look up
    assert not any(created for _, created in replayed)
    assert [e.log_index for e, _ in replayed] == list(range(MAX_BATCH))
    service.close()


def test_invalid_event_late_in_a_batch_stores_nothing(store: Store, service: AuditService) -> None:
    """Events are validated while the store writes the batch; a bad one at the end must still
    roll back the rows and log entries written before it."""
    service.ingest("acme", [event_in(1)])
    head = store.ledger_head("acme")
    batch = [event_in(n) for n in range(2, 40)] + [event_in(40, occurred_at="2999-01-01T00:00:00Z")]
    with pytest.raises(InvalidInput) as raised:
        service.ingest("acme", batch)
    assert "events[38].occurred_at" in str(raised.value.details)
    assert [e.id for e in store.iter_events("acme", Query())] == ["evt-00001"]
    assert store.ledger_head("acme") == head
    [(after, created)] = service.ingest("acme", [event_in(2)])
    assert created
    assert after.log_index == 1


def test_same_id_in_two_tenants_is_two_events(store: Store, service: AuditService) -> None:
    service.ingest("acme", [event_in(1)])
    [(other, created)] = service.ingest("globex", [event_in(1, action="other")])
    assert created
    assert other.tenant == "globex"
    acme = store.get_event("acme", "evt-00001")
    assert acme is not None
    assert acme.action != "other"


def test_server_ids_are_unique_and_sortable(service: AuditService) -> None:
    payload = {"action": "x", "actor": {"id": "a"}}
    results = service.ingest("acme", [msgspec.convert(payload, EventIn) for _ in range(50)])
    ids = [e.id for e, _ in results]
    assert len(set(ids)) == 50
    assert ids == sorted(ids)


def test_tenants_and_keys(store: Store, service: AuditService) -> None:
    assert [t.id for t in store.list_tenants()] == ["acme", "globex"]
    with pytest.raises(Conflict):
        service.create_tenant("acme")
    key, _ = service.create_key("acme", "ci", ["events.read"])
    fetched = store.get_key(key.id)
    assert fetched == key
    assert [k.id for k in store.list_keys("globex")] == []
    assert store.revoke_key(key.id, NOW)
    assert not store.revoke_key(key.id, NOW)
    revoked = store.get_key(key.id)
    assert revoked is not None
    assert revoked.revoked_at == NOW


def test_setting_is_created_once(store: Store) -> None:
    assert store.get_or_create_setting("x", "first") == "first"
    assert store.get_or_create_setting("x", "second") == "first"


FILTER_CASES = [
    {"actor_id": "user-1"},
    {"action": "created"},
    {"type": "user:role-changed"},
    {"target_type": "buyer"},
    {"target_id": "buyer-2"},
    {"source": "dashboard"},
    {"since": datetime(2024, 5, 1, 0, 0, 10, tzinfo=UTC)},
    {"until": datetime(2024, 5, 1, 0, 0, 20, tzinfo=UTC)},
    {"actor_id": "user-2", "action": "updated"},
    {"target_type": "transaction", "source": "api", "since": datetime(2024, 5, 1, tzinfo=UTC)},
    {
        "actor_id": "user-3",
        "since": datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC),
        "until": datetime(2024, 5, 1, 0, 0, 35, tzinfo=UTC),
        "type": "buyer:created",
    },
    {"actor_id": "nobody"},
]


def _matches(event: dict[str, object], f: dict[str, object]) -> bool:
    target = event.get("target") or {}
    assert isinstance(target, dict)
    actor = event["actor"]
    assert isinstance(actor, dict)
    occurred = datetime.fromisoformat(str(event["occurred_at"]))
    checks = {
        "actor_id": actor["id"],
        "action": event["action"],
        "type": event.get("type"),
        "target_type": target.get("type"),
        "target_id": target.get("id"),
        "source": event.get("source"),
    }
    for name, value in f.items():
        if name == "since" and not occurred >= value:  # type: ignore[operator]
            return False
        if name == "until" and not occurred < value:  # type: ignore[operator]
            return False
        if name in checks and checks[name] != value:
            return False
    return True


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: "+".join(f))
def test_every_filter_alone_and_combined(
    store: Store, service: AuditService, filters: dict[str, object]
) -> None:
    payloads = [event_payload(n) for n in range(120)]
    service.ingest("acme", [msgspec.convert(p, EventIn) for p in payloads])
    service.ingest("globex", [msgspec.convert(p, EventIn) for p in payloads[:30]])
    expected = {p["id"] for p in payloads if _matches(p, filters)}
    got = [e.id for e in store.iter_events("acme", Query.from_filters(EventFilter(**filters)))]  # type: ignore[arg-type]
    assert set(got) == expected
    assert len(got) == len(expected)
    if filters != {"actor_id": "nobody"}:
        assert expected, "the fixture data should exercise this filter"


def test_keyset_pages_in_both_directions_without_gap_or_duplicate(
    store: Store, service: AuditService
) -> None:
    seed(service, "acme", 57)
    everything = listing(store, "acme", Query(), None, Direction.OLDER, 1000)
    keys = [(position.occurred_ms, position.seq) for position, _ in everything]
    assert keys == sorted(keys, reverse=True), "newest first, ties broken by seq"
    assert [format_ms(ms) for ms, _ in keys] == [view.occurred_at for _, view in everything]

    pages, position = [], None
    while True:
        rows = listing(store, "acme", Query(), position, Direction.OLDER, 10)
        if not rows:
            break
        pages.append(rows)
        position = rows[-1][0]
    assert [v.id for page in pages for _, v in page] == [v.id for _, v in everything]

    # Walk back from the oldest event towards the newest.
    back = listing(store, "acme", Query(), position, Direction.NEWER, 1000)
    assert [v.id for _, v in reversed(back)] == [v.id for _, v in everything[:-1]]


def test_iter_events_is_oldest_first_across_chunks(store: Store, service: AuditService) -> None:
    seed(service, "acme", 25)
    events = [to_view(e) for e in store.iter_events("acme", Query(), chunk=4)]
    newest_first = listing(store, "acme", Query(), None, Direction.OLDER, 1000)
    assert len(events) == 25
    assert events == [view for _, view in reversed(newest_first)]


EDGE_TIMES = [
    "1970-01-01T00:00:00.000Z",
    "1970-01-01T00:00:00.001Z",
    "1999-12-31T23:59:59.999Z",  # PostgreSQL's binary timestamps count from 2000: -1000 us
    "2000-01-01T00:00:00.000Z",
    "2000-01-01T00:00:00.001Z",
    "2024-02-29T23:59:59.999Z",
]


def test_event_reads_keep_every_millisecond_around_the_engines_epochs(
    store: Store, service: AuditService
) -> None:
    """Pages, positions, cursors' keys and exports read timestamps as integers (SQLite's
    milliseconds, PostgreSQL's binary microseconds since 2000): exact on both sides of zero."""
    service.ingest(
        "acme", [event_in(n, occurred_at=at) for n, at in enumerate(reversed(EDGE_TIMES))]
    )
    newest_first = listing(store, "acme", Query(), None, Direction.OLDER, 100)
    assert [view.occurred_at for _, view in newest_first] == EDGE_TIMES[::-1]
    assert [format_ms(position.occurred_ms) for position, _ in newest_first] == EDGE_TIMES[::-1]

    walked, position = [], None
    while rows := listing(store, "acme", Query(), position, Direction.OLDER, 1):
        walked.append(rows[0][1].occurred_at)
        position = rows[0][0]
    assert walked == EDGE_TIMES[::-1]

    assert [to_view(e).occurred_at for e in store.iter_events("acme", Query(), chunk=2)] == (
        EDGE_TIMES
    )
    lines = store.iter_event_json("acme", Query(), chunk=2)
    assert [msgspec.json.decode(line)["occurred_at"] for line in lines] == EDGE_TIMES
    since = Query.from_filters(EventFilter(since=datetime(2000, 1, 1, tzinfo=UTC)))
    assert [v.occurred_at for _, v in listing(store, "acme", since, None, Direction.OLDER, 9)] == (
        EDGE_TIMES[:2:-1]
    )


def test_concurrent_writers_lose_nothing(store: Store, service: AuditService) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for batch in range(5):
                events = [event_in(worker * 1000 + batch * 10 + i, rng) for i in range(10)]
                service.ingest("acme", events)
                # Replays race with the other writer too: never a duplicate.
                service.ingest("acme", events[:3])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = listing(store, "acme", Query(), None, Direction.OLDER, 1000)
    assert len(rows) == 200
    assert len({view.id for _, view in rows}) == 200
    assert len({position.seq for position, _ in rows}) == 200


@pytest.mark.parametrize(
    "occurred_at", ["2024-01-01T02:00:00.123456+02:00", "2024-01-01T00:00:00.123999Z"]
)
def test_normalize_keeps_ms_and_utc(occurred_at: str) -> None:
    given = msgspec.convert(
        {"action": "a", "actor": {"id": "x"}, "occurred_at": occurred_at}, EventIn
    )
    item = normalize_event("acme", given, NOW + timedelta(days=3000))
    assert item.event.occurred_at == datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


_AWKWARD_TEXT = [
    'quote " and backslash \\ and slash /',
    "control \x01\x1f chars, tab\t, newline\n",
    "unicode: é 中文 \u2028\u2029 😀 \ue000\uffff",
    "<script>alert(1)</script>",
]
_AWKWARD_METADATA: list[dict[str, object]] = [
    {},
    {"float": 1.5, "tiny": 1e-7, "huge": 1e300, "negative": -0.25, "whole": 3.0},
    {"int": 2**53 - 1, "neg": -(2**53 - 1), "zero": 0, "bool": False, "none": None},
    {"deep": {"a": [{"b": [1, 2, {"c": "d"}]}]}, "list": [], "obj": {}},
    {text: text for text in _AWKWARD_TEXT},
]


# Also what COPY's text format must escape: its NULL marker \N, backslashes, CR.
@pytest.mark.parametrize("text", [*_AWKWARD_TEXT, "\\N", "back\\slash \\N", "cr\r\n", " "])
def test_awkward_text_round_trips_in_every_column(
    store: Store, service: AuditService, text: str
) -> None:
    payload = event_payload(
        1,
        action=text,
        type=text,
        source=text,
        actor={"id": text, "name": text, "email": f"{text}@x", "type": text, "status": text},
        target={"type": text, "id": text, "name": text, "email": f"{text}@x"},
        context={"user_agent": text},
        metadata={text: text},
    )
    [(stored, _)] = service.ingest("acme", [msgspec.convert(payload, EventIn)])
    fetched = store.get_event("acme", stored.id)
    assert fetched == as_stored(stored)
    assert fetched is not None
    assert fetched.action == fetched.actor.id == fetched.target.name == text  # type: ignore[union-attr]
    assert fetched.metadata == {text: text}


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_json_export_holds_every_match_once_in_order(
    store: Store, service: AuditService, chunk: int
) -> None:
    """The export renders ranges in parallel; in any chunking, with ties in occurred_at and
    with filters, it must be exactly the keyset walk."""
    rng = random.Random(3)
    events = [event_in(n, rng) for n in range(60)]
    service.ingest("acme", events[:25])
    service.ingest("acme", events[25:])
    service.ingest("globex", events[:5])
    for filters in (Query(), parse_query("actor:user-1"), parse_query("source:api")):
        expected = [view.id for view in store.iter_events("acme", filters)]
        lines = store.iter_event_json("acme", filters, chunk=chunk)
        assert [msgspec.json.decode(line)["id"] for line in lines] == expected
        assert expected


def test_abandoned_json_export_leaves_no_thread_behind(store: Store, service: AuditService) -> None:
    service.ingest("acme", [event_in(n) for n in range(50)])
    lines = store.iter_event_json("acme", Query(), chunk=5)
    assert next(lines)
    lines.close()  # what a client hanging up does to a streamed export
    assert not [t for t in threading.enumerate() if t.name.startswith("trailkeeper-export")]


def test_database_rendered_json_is_exactly_the_view(store: Store, service: AuditService) -> None:
    """Bulk export takes the database's JSON rendering; it must equal the view's encoding."""
    rng = random.Random(7)
    events = []
    for n in range(40):
        text = _AWKWARD_TEXT[n % len(_AWKWARD_TEXT)]
        payload = event_payload(
            n,
            rng,
            metadata=_AWKWARD_METADATA[n % len(_AWKWARD_METADATA)],
            occurred_at=datetime(
                1970 + n, 1 + n % 12, 1 + n % 28, n % 24, n, n, n * 24_999, tzinfo=UTC
            ).isoformat(),
        )
        payload["actor"] = {"id": text, "name": text if n % 2 else None}
        if n % 3 == 0:
            payload["actor"]["staff"] = n % 2 == 0
        if n % 4 == 0:
            payload["target"] = {"name": text, "email": "a@b"}
        if n % 5 == 0:
            payload["context"] = {"ip": "2001:db8::1", "user_agent": text}
        elif n % 5 == 1:
            payload["context"] = {"user_agent": text}
        events.append(msgspec.convert(payload, EventIn))
    service.ingest("acme", events[:20])
    service.ingest("acme", events[20:])

    views = list(store.iter_events("acme", Query()))
    documents = list(store.iter_event_json("acme", Query(), chunk=7))
    assert len(views) == len(documents) == 40
    sorted_json = msgspec.json.Encoder(order="sorted")  # compares types too: 0 is not false
    for view, document in zip(views, documents, strict=True):
        assert sorted_json.encode(msgspec.json.decode(document)) == sorted_json.encode(
            to_view(view)
        )
        assert msgspec.json.decode(document) == event_document(view)


def test_rendered_json_of_events_outside_the_log(database_url: str) -> None:
    """Events stored without the ledger (log_index and leaf_hash null) export as the view."""
    plain = open_store(database_url, ledger=False)
    try:
        service = AuditService(plain)
        service.create_tenant("acme")
        service.ingest("acme", [event_in(n) for n in range(5)])
        views = list(plain.iter_events("acme", Query()))
        documents = [msgspec.json.decode(d) for d in plain.iter_event_json("acme", Query())]
    finally:
        plain.close()
    assert [(d["log_index"], d["leaf_hash"]) for d in documents] == [(None, None)] * 5
    assert documents == [msgspec.to_builtins(to_view(view)) for view in views]


def test_sqlite_timestamp_rendering_is_exact_over_the_whole_range() -> None:
    """SQLite renders export timestamps from float seconds; rounding must never show."""
    import sqlite3

    from trailkeeper.model import format_ms, to_ms
    from trailkeeper.store.sql import SQLITE_EVENT_JSON

    expression = SQLITE_EVENT_JSON.split("'occurred_at', ", 1)[1].split(", 'received_at'")[0]
    latest = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))
    rng = random.Random(3)
    values = [0, 1, 999, 1000, latest, latest - 1, 1_657_060_224_662]
    values += [rng.randint(0, latest) for _ in range(5000)]
    values += [rng.randint(0, 4_102_444_800_000) for _ in range(5000)]  # up to 2100
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (occurred_at INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    rendered = conn.execute(f"SELECT occurred_at, {expression} FROM t").fetchall()
    assert [text for _, text in rendered] == [format_ms(v) for v, _ in rendered]


def test_opening_a_store_leaves_no_connection_behind(database_url: str, tmp_path: Path) -> None:
    """Migrating must not hold a connection: on SQLite a leaked one kept answering for a file
    that had been replaced, so a store reopened on a restored file found no tables."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        for _ in range(2):
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                name.unlink(missing_ok=True)
            store = open_store(database_url)
            store.create_tenant(Tenant(id="acme", name="Acme", created_at=utc_now_ms()))
            store.close()
        return
    import psycopg

    open_store(database_url).close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row == (0,), "a connection outlived the store"


# ---- time bounds finer than the stored millisecond (docs/api.md: "Time bounds") -------------

BOUND_TIMES = ["2024-05-01T00:00:00.000Z", "2024-05-01T00:00:00.001Z", "2024-05-01T00:00:00.002Z"]


def _ids_everywhere(service: AuditService, filters: EventFilter) -> list[str]:
    """The ids a filter selects, oldest first, as listing, JSON export and CSV export each
    give them: all three must agree."""
    page, _, _ = service.list_events("acme", filters, 100, None, "native")
    listed = [view.id for view in reversed(page.events)]
    jsonl = b"".join(service.export("acme", filters, "jsonl"))
    exported = [msgspec.json.decode(line)["id"] for line in jsonl.splitlines()]
    csv_text = b"".join(service.export("acme", filters, "csv")).decode()
    in_csv = [line.split(",", 1)[0] for line in csv_text.splitlines()[1:]]
    assert listed == exported == in_csv
    return listed


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_sub_millisecond_bounds_are_truncated_to_the_millisecond(service: AuditService) -> None:
    """SQLite kept `since=...00.0004Z` as .000 and PostgreSQL as .0004, so they disagreed."""
    service.ingest("acme", [event_in(n, occurred_at=at) for n, at in enumerate(BOUND_TIMES)])
    ids = ["evt-00000", "evt-00001", "evt-00002"]
    cases = [
        ({"since": "2024-05-01T00:00:00.0004Z"}, ids),
        ({"since": "2024-05-01T00:00:00.0009999Z"}, ids),
        ({"since": "2024-05-01T00:00:00.001Z"}, ids[1:]),
        ({"until": "2024-05-01T00:00:00.0006Z"}, []),
        ({"until": "2024-05-01T00:00:00.0016Z"}, ids[:1]),
        ({"until": "2024-05-01T00:00:00.001Z"}, ids[:1]),
        ({"since": "2024-05-01T00:00:00.0004Z", "until": "2024-05-01T00:00:00.0006Z"}, []),
        ({"since": "2024-05-01T00:00:00.0004Z", "until": "2024-05-01T00:00:00.0016Z"}, ids[:1]),
        ({"since": "2024-05-01T02:00:00.0014+02:00"}, ids[1:]),
        ({"until": "2024-04-30T23:00:00.0024-01:00"}, ids[:2]),
    ]
    for bounds, expected in cases:
        filters = EventFilter(**{name: _at(value) for name, value in bounds.items()})
        assert _ids_everywhere(service, filters) == expected, bounds


@st.composite
def _bounds(draw: st.DrawFn) -> tuple[datetime | None, datetime | None]:
    """since/until within a few ms of the stored events, in any offset, to the microsecond."""
    base = _at(BOUND_TIMES[0])

    def one() -> datetime | None:
        if not draw(st.booleans()):
            return None
        micros = draw(st.integers(min_value=-1500, max_value=3500))
        minutes = draw(st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
        zone = UTC if minutes == 0 else timezone(timedelta(minutes=minutes))
        return (base + timedelta(microseconds=micros)).astimezone(zone)

    return one(), one()


def test_time_bounds_select_the_same_events_on_every_engine(service: AuditService) -> None:
    """Every path selects exactly the events whose stored millisecond m has
    truncate(since) <= m < truncate(until), on both engines."""
    service.ingest("acme", [event_in(n, occurred_at=at) for n, at in enumerate(BOUND_TIMES)])
    stored = [(f"evt-{n:05d}", to_ms(_at(at))) for n, at in enumerate(BOUND_TIMES)]

    @settings(max_examples=60, deadline=None)
    @given(_bounds())
    def check(bounds: tuple[datetime | None, datetime | None]) -> None:
        since, until = bounds
        if since is not None and until is not None and since >= until:
            return  # a 400 (since must be earlier than until), tested elsewhere
        expected = [
            ident
            for ident, ms in stored
            if (since is None or to_ms(since) <= ms) and (until is None or ms < to_ms(until))
        ]
        assert _ids_everywhere(service, EventFilter(since=since, until=until)) == expected

    check()


@pytest.mark.parametrize(
    ("since", "until", "found"),
    [
        ("0001-01-01T00:00:00+00:01", None, True),
        (None, "9999-12-31T23:59:59-01:00", True),
        ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.999999-23:59", True),
        ("9999-12-31T23:59:59.999999-23:59", None, False),
        (None, "0001-01-01T00:00:00.000001+23:59", False),
    ],
)
def test_bounds_beyond_the_datetime_range_in_utc_are_no_error(
    service: AuditService, since: str | None, until: str | None, found: bool
) -> None:
    """Bounds whose UTC instant is before year 1 or after 9999 raised OverflowError (a 500)."""
    service.ingest("acme", [event_in(0, occurred_at=BOUND_TIMES[0])])
    filters = EventFilter(
        since=None if since is None else _at(since), until=None if until is None else _at(until)
    )
    assert _ids_everywhere(service, filters) == (["evt-00000"] if found else [])


def _race(attempts: int, action: Callable[[], object]) -> list[str]:
    """Run `action` in `attempts` threads released together; each one's outcome by name."""
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            action()
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


RACERS = 8


@pytest.mark.parametrize("round_", range(4))
def test_racing_inserts_of_one_row_give_one_success_and_conflicts(
    store: Store, service: AuditService, round_: int
) -> None:
    """Every insert that two requests can race on ends in one row and `Conflict`s (a 409),
    never the engine's unique violation (a 500 on PostgreSQL)."""
    once = ["conflict"] * (RACERS - 1) + ["ok"]
    tenant = Tenant(f"racing-{round_}", "Racing", NOW)
    assert _race(RACERS, lambda: store.create_tenant(tenant)) == once
    key = ApiKey(f"key-{round_}", "acme", "ci", ("events.read",), b"hash", NOW)
    assert _race(RACERS, lambda: store.create_key(key)) == once
    values: list[str] = []
    setting = f"racing-{round_}"
    assert (
        _race(RACERS, lambda: values.append(store.get_or_create_setting(setting, "v")))
        == ["ok"] * RACERS
    )
    assert values == ["v"] * RACERS
    checkpoint = Checkpoint("acme", 1 + round_, b"r" * 32, NOW, "note")
    assert _race(RACERS, lambda: store.save_checkpoint(checkpoint)) == ["ok"] * RACERS
    pair = KeyPair(f"kid-{round_}", "acme", "ci", "PEM", NOW)
    assert _race(RACERS, lambda: store.create_key_pair(pair)) == once
    assert [p.id for p in store.list_key_pairs("acme")] == [f"kid-{round_}"]
