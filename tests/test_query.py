"""The search query language (trailkeeper.query): what each construct parses to, every error
with its position and token, and the properties cursors and the viewer rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trailkeeper.errors import InvalidInput
from trailkeeper.model import EventFilter, to_ms
from trailkeeper.query import (
    FIELDS,
    MAX_CLAUSES,
    MAX_METADATA_PATH,
    MAX_QUERY_CHARS,
    MAX_VALUE_CHARS,
    MAX_VALUES,
    OUTCOMES,
    Clause,
    Match,
    MetadataTerm,
    Query,
    Term,
    Text,
    TimeBound,
    Value,
    parse_query,
    words,
)

PREFIX = Match.PREFIX


def ms(*args: int, tz: timezone = UTC) -> int:
    return to_ms(datetime(*args, tzinfo=tz))  # type: ignore[misc]


DAY = 86_400_000
JAN1 = ms(2026, 1, 1)
LIMIT = ms(9999, 12, 31, 23, 59, 59, 999_000) + 1


def q(*clauses: Clause) -> Query:
    return Query(tuple(clauses))


# ---- what each construct means ---------------------------------------------------------------

PARSES = [
    ("", q()),
    ("   \t\n ", q()),
    ("actor:u-1", q(Term("actor", (Value("u-1"),)))),
    ("actor.id:u-1", q(Term("actor", (Value("u-1"),)))),
    ("Actor:u-1", q(Term("actor", (Value("u-1"),)))),
    ("actor.email:a@x.io", q(Term("actor.email", (Value("a@x.io"),)))),
    ('actor.email:"a b@x.io"', q(Term("actor.email", (Value("a b@x.io"),)))),
    ("action:user.login", q(Term("action", (Value("user.login"),)))),
    ("action:user.*", q(Term("action", (Value("user.", PREFIX),)))),
    ('action:"user.*"', q(Term("action", (Value("user.", PREFIX),)))),
    ("action:user.\\*", q(Term("action", (Value("user.*"),)))),
    (
        "action:created,deleted",
        q(Term("action", (Value("created"), Value("deleted")))),
    ),
    (
        'action:"a b",c,user.*',
        q(Term("action", (Value("a b"), Value("c"), Value("user.", PREFIX)))),
    ),
    ("-action:user.login", q(Term("action", (Value("user.login"),), negated=True))),
    ("type:billing", q(Term("type", (Value("billing"),)))),
    ("target.type:invoice", q(Term("target.type", (Value("invoice"),)))),
    ("target.id:inv_1", q(Term("target.id", (Value("inv_1"),)))),
    ("target.id:a:b", q(Term("target.id", (Value("a:b"),)))),
    ("source:api", q(Term("source", (Value("api"),)))),
    ("action:-x", q(Term("action", (Value("-x"),)))),
    ("outcome:success", q(Term("outcome", (Value("success"),)))),
    ("outcome:FAILURE,success", q(Term("outcome", (Value("failure"), Value("success"))))),
    ('source:"say \\"hi\\""', q(Term("source", (Value('say "hi"'),)))),
    ('source:"back\\\\slash"', q(Term("source", (Value("back\\slash"),)))),
    ("source:a\\ b", q(Term("source", (Value("a b"),)))),
    ("metadata.plan:pro", q(MetadataTerm(("plan",), ("pro",)))),
    ("metadata.req.id:r-1,r-2", q(MetadataTerm(("req", "id"), ("r-1", "r-2")))),
    ('-metadata.Plan_x:"a b"', q(MetadataTerm(("Plan_x",), ("a b",), negated=True))),
    ("invoice", q(Text("invoice"))),
    ("invoice*", q(Text("invoice", PREFIX))),
    ("-invoice", q(Text("invoice", negated=True))),
    ('"who deleted"', q(Text("who deleted"))),
    ('-"who deleted"', q(Text("who deleted", negated=True))),
    ('"OR"', q(Text("OR"))),
    ("or", q(Text("or"))),
    ("12\\:30", q(Text("12:30"))),
    ("a,b", q(Text("a,b"))),
    # Times: after/since are >=, before/until are <; a date is its whole UTC day.
    ("after:2026-01-01", q(TimeBound("after", JAN1))),
    ("since:2026-01-01", q(TimeBound("after", JAN1))),
    ("before:2026-01-01", q(TimeBound("before", JAN1))),
    ("until:2026-01-01", q(TimeBound("before", JAN1))),
    ("occurred:>=2026-01-01", q(TimeBound("after", JAN1))),
    ("occurred:>2026-01-01", q(TimeBound("after", JAN1 + DAY))),
    ("occurred:<2026-01-01", q(TimeBound("before", JAN1))),
    ("occurred:<=2026-01-01", q(TimeBound("before", JAN1 + DAY))),
    ("occurred:2026-01-01", q(TimeBound("after", JAN1), TimeBound("before", JAN1 + DAY))),
    ("before:2026-02-01T10:00Z", q(TimeBound("before", ms(2026, 2, 1, 10)))),
    ("after:2026-02-01t10:00:05z", q(TimeBound("after", ms(2026, 2, 1, 10, 0, 5)))),
    ("after:2026-02-01T10:00+02:00", q(TimeBound("after", ms(2026, 2, 1, 8)))),
    ("after:2026-02-01T10:00-00:30", q(TimeBound("after", ms(2026, 2, 1, 10, 30)))),
    ("after:2026-02-01T10:00:00.25Z", q(TimeBound("after", ms(2026, 2, 1, 10) + 250))),
    ('after:"2026-01-01"', q(TimeBound("after", JAN1))),
    # An instant is one millisecond: > and <= move past it.
    ("occurred:>2026-02-01T10:00Z", q(TimeBound("after", ms(2026, 2, 1, 10) + 1))),
    ("occurred:<=2026-02-01T10:00Z", q(TimeBound("before", ms(2026, 2, 1, 10) + 1))),
    # Between two milliseconds: truncated to the millisecond, as the since/until parameters.
    ("after:2026-02-01T10:00:00.0005Z", q(TimeBound("after", ms(2026, 2, 1, 10)))),
    ("before:2026-02-01T10:00:00.0005Z", q(TimeBound("before", ms(2026, 2, 1, 10)))),
    ("occurred:>2026-02-01T10:00:00.0005Z", q(TimeBound("after", ms(2026, 2, 1, 10) + 1))),
    ("occurred:<=2026-02-01T10:00:00.000999Z", q(TimeBound("before", ms(2026, 2, 1, 10) + 1))),
    # Outside the stored range: clamped, which selects the same events.
    ("after:1900-01-01", q(TimeBound("after", 0))),
    ("before:0001-01-01", q(TimeBound("before", 0))),
    ("occurred:<=9999-12-31", q(TimeBound("before", LIMIT))),
    ("after:9999-12-31T23:00-05:00", q(TimeBound("after", LIMIT))),
    (
        "action:user.* -outcome:failure after:2026-01-01 who",
        q(
            Term("action", (Value("user.", PREFIX),)),
            Term("outcome", (Value("failure"),), negated=True),
            TimeBound("after", JAN1),
            Text("who"),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), PARSES, ids=[t for t, _ in PARSES])
def test_parses(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


# ---- errors: position (1-based) and token -----------------------------------------------------

_TWENTY = "action:" + ",".join(["a"] * 20)  # 20 values: the fourth passes MAX_VALUES
_WIDE = "\uff12\uff10\uff12\uff16-01-01"  # fullwidth digits are not ASCII digits
ERRORS = [
    ("actr:x", 1, "actr", "unknown qualifier 'actr' at position 1"),
    ("action:a actr:x", 10, "actr", "unknown qualifier"),
    ("-actr:x", 2, "actr", "unknown qualifier"),
    ("act*:x", 1, "act*", "unknown qualifier"),
    ("metadata:x", 1, "metadata", "unknown qualifier"),
    (":x", 1, ":x", "missing qualifier"),
    ('actor.email:"a b', 13, '"a b', "unterminated quote"),
    ('"who', 1, '"who', "unterminated quote"),
    ('source:"a\\"', 8, '"a\\"', "unterminated quote"),
    ("action:", 1, "action:", "empty value"),
    ("action: x", 1, "action:", "empty value"),
    ("x action:a,,b", 3, "action:a,,", "empty value"),
    ("action:a,", 1, "action:a,", "empty value"),
    ("action:,a", 1, "action:,", "empty value"),
    ('action:""', 8, '""', "empty value"),
    ('""', 1, '""', "empty text"),
    ("action:us*er", 8, "us*er", "a wildcard may only end a value"),
    ("action:a**", 8, "a**", "a wildcard may only end a value"),
    ("in*voice", 1, "in*voice", "a wildcard may only end a value"),
    ("type:*", 6, "*", "a wildcard needs a prefix"),
    ("*", 1, "*", "a wildcard needs a prefix"),
    ("outcome:succ*", 9, "succ*", "outcome takes no wildcard"),
    ("metadata.k:v*", 12, "v*", "metadata takes no wildcard"),
    ("outcome:maybe", 9, "maybe", "unknown outcome"),
    ("outcome:success,error", 17, "error", "unknown outcome"),
    ("after:2026-02-30", 7, "2026-02-30", "bad date"),
    ("after:2026-13-01", 7, "2026-13-01", "bad date"),
    ("after:0000-01-01", 7, "0000-01-01", "bad date"),
    ("before:2026-01-01T24:00Z", 8, "2026-01-01T24:00Z", "bad time"),
    ("before:2026-01-01T10:60Z", 8, "2026-01-01T10:60Z", "bad time"),
    ("before:2026-01-01T10:00:60Z", 8, "2026-01-01T10:00:60Z", "bad time"),
    ("before:2026-01-01T10:00+24:00", 8, "2026-01-01T10:00+24:00", "bad offset"),
    ("before:2026-01-01T10:00+01:60", 8, "2026-01-01T10:00+01:60", "bad offset"),
    ("before:2026-1-1", 8, "2026-1-1", "bad time"),
    ("before:yesterday", 8, "yesterday", "bad time"),
    ("before:" + _WIDE, 8, _WIDE, "bad time"),
    ("after:2026-01-01T10:00", 7, "2026-01-01T10:00", "needs an offset"),
    ("occurred:2026-01-01T10:00Z", 10, "2026-01-01T10:00Z", "needs an operator"),
    ("occurred:=2026-01-01", 10, "=2026-01-01", "bad time"),
    ("occurred:>=", 1, "occurred:>=", "empty value"),
    ("after:2026-01-01,2026-02-01", 18, "2026-02-01", "one time per time qualifier"),
    ("after:2026-01*", 7, "2026-01*", "after takes no wildcard"),
    ("-after:2026-01-01", 1, "-after:", "a time cannot be negated"),
    ("-", 1, "-", "nothing to negate"),
    ("a - b", 3, "-", "nothing to negate"),
    ("--x", 1, "--", "nothing to negate"),
    ("OR", 1, "OR", "unsupported operator"),
    ("action:a AND type:b", 10, "AND", "unsupported operator"),
    ("-NOT", 2, "NOT", "unsupported operator"),
    ('"a"b', 4, "b", "unexpected"),
    ('"a":b', 4, ":", "unexpected"),
    ('action:"a"b', 11, "b", "unexpected"),
    ('ab"c', 1, 'ab"', "quote inside a value"),
    ('action:x"y"', 8, 'x"', "quote inside a value"),
    ("a\\", 2, "\\", "nothing to escape"),
    ("metadata.:x", 1, "metadata.", "bad metadata key"),
    ("metadata.a..b:x", 1, "metadata.a..b", "bad metadata key"),
    ("metadata.a$:x", 1, "metadata.a$", "bad metadata key"),
    ("metadata.a*:x", 1, "metadata.a*", "bad metadata key"),
    ("metadata." + "k" * 65 + ":x", 1, "metadata." + "k" * 31 + "...", "bad metadata key"),
    ("metadata.a.b.c.d.e:x", 1, "metadata.a.b.c.d.e", "too deep"),
    ("action:" + "a" * 257, 8, "a" * 40 + "...", "longer than 256 characters"),
    ("actor.email:" + "a" * 320 + "@", 13, "a" * 40 + "...", "longer than 320 characters"),
    ("w" * 257, 1, "w" * 40 + "...", "longer than 256 characters"),
    ("a\x00b", 2, "\\x00", "NUL character"),
    ("x" * (MAX_QUERY_CHARS + 1), MAX_QUERY_CHARS + 1, "x", "query longer than 1024"),
    (" ".join(["w"] * (MAX_CLAUSES + 1)), 2 * MAX_CLAUSES + 1, "w", "too many terms"),
    (" ".join([_TWENTY] * 4), 3 * (len(_TWENTY) + 1) + 1, _TWENTY[:40] + "...", "too many terms"),
    ("occurred:2026-01-01 " * 16 + "x", 16 * 20 + 1, "x", "too many terms"),
]


@pytest.mark.parametrize(
    ("text", "position", "token", "message"), ERRORS, ids=[e[0][:40] for e in ERRORS]
)
def test_errors_name_position_and_token(text: str, position: int, token: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_query(text)
    error = caught.value
    assert error.code == "invalid_request"
    assert error.status == 400
    assert error.details == [
        {"field": "q", "position": position, "token": token, "message": error.message}
    ]
    assert message in error.message
    assert f"'{token}' at position {position}" in error.message


def test_limits_hold_at_the_boundary() -> None:
    assert len(parse_query(" ".join(["w"] * MAX_CLAUSES)).clauses) == MAX_CLAUSES
    many = " ".join(f"action:{','.join(['a'] * 16)}" for _ in range(MAX_VALUES // 16))
    assert len(parse_query(many).clauses) == MAX_VALUES // 16
    assert parse_query("x" * 256 + " " * (MAX_QUERY_CHARS - 256)) == q(Text("x" * 256))
    assert parse_query("metadata.a.b.c.d:x").clauses[0] == MetadataTerm(
        ("a", "b", "c", "d"), ("x",)
    )
    assert MAX_METADATA_PATH == 4
    assert parse_query("action:" + "a" * MAX_VALUE_CHARS).clauses


# ---- render, canonical, filters, and_ ---------------------------------------------------------


def test_render_is_the_normal_spelling() -> None:
    text = (
        'actor.id:u1 Action:"user.*",x occurred:2026-01-01 occurred:>2026-02-01T10:00Z '
        'metadata.a.b:"x y" -"who deleted" 12\\:30 "OR" "-x" \'q\' c\\*'
    )
    assert parse_query(text).render() == (
        "actor:u1 action:user.*,x after:2026-01-01 before:2026-01-02 "
        'after:2026-02-01T10:00:00.001Z metadata.a.b:"x y" -"who deleted" "12:30" "OR" "-x" '
        '"\'q\'" "c\\*"'
    )


def test_render_of_clamped_bounds_reads_back() -> None:
    for query in (q(TimeBound("after", LIMIT)), q(TimeBound("before", LIMIT))):
        assert parse_query(query.render()) == query
    assert q(TimeBound("after", 0)).render() == "after:1970-01-01"


def test_canonical_ignores_order_repeats_aliases_and_spellings() -> None:
    same = [
        "actor:u1 action:a,b after:2026-01-01",
        "action:b,a,a actor.id:u1 occurred:>=2026-01-01T00:00Z",
        "since:2025-06-01 after:2026-01-01 action:a,b actor:u1 actor:u1",
        "occurred:>2025-12-31 action:b,a Actor:u1",
    ]
    assert len({parse_query(text).canonical() for text in same}) == 1


def test_canonical_tells_different_queries_apart() -> None:
    different = [
        "",
        "action:a",
        "-action:a",
        "action:a*",
        "action:a,b",
        "action:a action:b",
        "type:a",
        "a",
        "-a",
        "a*",
        '"action:a"',
        "metadata.action:a",
        "metadata.x.y:a",
        "metadata.x:y.a",
        "after:2026-01-01",
        "before:2026-01-01",
        "after:2026-01-02",
        "after:2026-01-01T00:00:00.001Z",
    ]
    assert len({parse_query(text).canonical() for text in different}) == len(different)


def test_filters_are_sugar_for_qualifiers() -> None:
    filters = EventFilter(
        actor_id="u1",
        action="user.*",
        type="t",
        target_type="invoice",
        target_id="inv 1",
        source="api",
        since=datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        until=datetime(2026, 2, 1, tzinfo=UTC),
    )
    query = Query.from_filters(filters)
    assert query == q(
        Term("actor", (Value("u1"),)),
        Term("action", (Value("user.*"),)),  # a filter value is literal, never a wildcard
        Term("type", (Value("t"),)),
        Term("target.type", (Value("invoice"),)),
        Term("target.id", (Value("inv 1"),)),
        Term("source", (Value("api"),)),
        TimeBound("after", JAN1),
        TimeBound("before", ms(2026, 2, 1)),
    )
    text = (
        'actor:u1 action:user.\\* type:t target.type:invoice target.id:"inv 1" source:api '
        "after:2026-01-01 before:2026-02-01"
    )
    assert query.canonical() == parse_query(text).canonical()
    assert parse_query(query.render()) == query
    assert Query.from_filters(EventFilter()) == Query()


def test_filter_times_are_truncated_to_whole_milliseconds() -> None:
    at = datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    query = Query.from_filters(EventFilter(since=at, until=at))
    assert query == q(TimeBound("after", JAN1), TimeBound("before", JAN1))
    early = Query.from_filters(EventFilter(since=datetime(1900, 1, 1, tzinfo=UTC)))
    assert early == q(TimeBound("after", 0))


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        (EventFilter(action=""), "action"),
        (EventFilter(source="a\x00"), "source"),
        (EventFilter(target_id="x" * 257), "target_id"),
        (EventFilter(since=datetime(2026, 1, 1)), "since"),
        (EventFilter(until=datetime(2026, 1, 1)), "until"),
    ],
)
def test_filters_refuse_what_the_parameters_refuse(filters: EventFilter, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Query.from_filters(filters)
    assert caught.value.details[0]["field"] == field


def test_and_combines_a_pinned_query_with_the_users() -> None:
    pinned = parse_query("target.id:workspace-9")
    mine = parse_query("action:user.* after:2026-01-01")
    both = pinned.and_(mine)
    assert both.clauses == pinned.clauses + mine.clauses
    assert both.canonical() == mine.and_(pinned).canonical()
    assert parse_query(both.render()) == both
    assert Query().and_(mine) == mine


def test_time_bounds_are_the_narrowest() -> None:
    query = parse_query("after:2026-01-01 after:2025-01-01 before:2026-03-01 before:2026-02-01")
    assert query.time_bounds() == (JAN1, ms(2026, 2, 1))
    assert parse_query("x").time_bounds() == (None, None)


# ---- properties -------------------------------------------------------------------------------

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
_match = st.sampled_from(Match)
_text_fields = sorted(set(FIELDS.values()) - {"outcome"})


def _terms() -> st.SearchStrategy[Clause]:
    values = st.lists(st.builds(Value, _text, _match), min_size=1, max_size=3)
    text_term = st.builds(
        lambda field, vs, neg: Term(field, tuple(vs), neg),
        st.sampled_from(_text_fields),
        values,
        st.booleans(),
    )
    outcome_term = st.builds(
        lambda vs, neg: Term("outcome", tuple(Value(v) for v in vs), neg),
        st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2),
        st.booleans(),
    )
    key = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
    metadata = st.builds(
        lambda path, vs, neg: MetadataTerm(tuple(path), tuple(vs), neg),
        st.lists(key, min_size=1, max_size=MAX_METADATA_PATH),
        st.lists(_text, min_size=1, max_size=3),
        st.booleans(),
    )
    time = st.builds(
        TimeBound,
        st.sampled_from(["after", "before"]),
        st.one_of(st.integers(0, LIMIT), st.integers(0, LIMIT // DAY).map(lambda d: d * DAY)),
    )
    # free text needs a letter or digit (else a 400: nothing to search for)
    text = st.builds(Text, _text.filter(words), _match, st.booleans())
    return st.one_of(text_term, outcome_term, metadata, time, text)


# At most 6 clauses of at most 3 values of 12 characters: always within the parse limits.
_queries = st.lists(_terms(), max_size=6).map(lambda cs: Query(tuple(cs)))


@given(_queries)
def test_render_reads_back_equal(query: Query) -> None:
    assert parse_query(query.render()) == query


@given(_queries.flatmap(lambda query: st.tuples(st.just(query), st.permutations(query.clauses))))
def test_canonical_ignores_clause_order(pair: tuple[Query, list[Clause]]) -> None:
    query, shuffled = pair
    assert Query(tuple(shuffled)).canonical() == query.canonical()


# Fragments that reach every branch of the parser, glued at random.
_FRAGMENTS = [
    *FIELDS,
    "metadata.",
    "metadata.a.b",
    "after",
    "before",
    "occurred",
    ":",
    ",",
    "-",
    '"',
    "\\",
    "*",
    " ",
    ">=",
    ">",
    "<=",
    "<",
    "2026-01-01",
    "T10:00",
    ":00.0005",
    "Z",
    "+01:00",
    "success",
    "OR",
    "x",
    "é",
    "\x00",
    "\t",
]


@given(st.one_of(st.text(), st.lists(st.sampled_from(_FRAGMENTS)).map("".join)))
@example("action:user.* -outcome:failure after:2026-01-01")
@example('occurred:<=9999-12-31T23:59:59.999999999-23:59 "\\**"')
def test_parse_raises_only_invalid_input_and_reads_back(text: str) -> None:
    try:
        query = parse_query(text)
    except InvalidInput as error:
        detail = error.details[0]
        assert detail["field"] == "q"
        assert 1 <= detail["position"] <= len(text) + 1
        return
    assert parse_query(query.render()) == query
    assert parse_query(query.render()).canonical() == query.canonical()


@pytest.mark.parametrize("text", ["...", '":"', "-@@", "*"])
def test_free_text_without_a_letter_or_digit_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_query(text)
    assert raised.value.details[0]["position"] >= 1
