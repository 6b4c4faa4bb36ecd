"""Fast validation paths must agree exactly with the slow, obviously right ones."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trailkeeper.errors import InvalidInput
from trailkeeper.model import (
    EMAIL_PATTERN,
    EPOCH,
    EVENT_ID_PATTERN,
    IP_PATTERN,
    Actor,
    Context,
    EventIn,
    Target,
    from_ms,
    to_ms,
    utc_now_ms,
)
from trailkeeper.validation import is_email, is_event_id, is_ip, normalize_event

_IP_CHARS = st.text(alphabet="0123456789abcdefABCDEF:.", min_size=2, max_size=45)
_OCTET = st.integers(min_value=0, max_value=255)
_DAY_MINUTES = 23 * 60 + 59  # the largest offset RFC 3339 can write


def _reference_is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@given(
    st.one_of(
        _IP_CHARS,
        st.builds(lambda *o: ".".join(map(str, o)), _OCTET, _OCTET, _OCTET, _OCTET),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: a.exploded),
        st.text(max_size=45).filter(lambda t: "%" not in t),  # ipaddress takes scope ids
    )
)
@example("01.2.3.4")
@example("::ffff:1.2.3.4")
@example("1:2:3:4:5:6:1.2.3.4")
@example("1::2::3")
@example("00000::1")
@example("1.2.3.4\n")
@example(" ::1")
@example("1.2.3.4\x00")
@example("\u0661.\u0662.\u0663.\u0664")  # Arabic-Indic digits
def test_is_ip_agrees_with_ipaddress(text: str) -> None:
    """No pattern runs before it (model.py), so any text, not only IP_PATTERN's characters."""
    assert is_ip(text) == _reference_is_ip(text)
    if is_ip(text):
        assert re.fullmatch(IP_PATTERN, text)  # what the OpenAPI schema states holds


_ANY_TEXT = st.text(max_size=40)


@given(st.one_of(_ANY_TEXT, st.from_regex(EVENT_ID_PATTERN, fullmatch=True)))
@example("abc\n")  # msgspec's pattern (re.search: `$` before a final newline) took this
@example("")
@example("-abc")
@example("a b")
@example("évent")
@example("0192f0d2-8f7a-7cc0-b5c1-1f0e9d5b3a77")
@example("a.b_c:d~e-f")
def test_is_event_id_agrees_with_its_pattern(text: str) -> None:
    assert is_event_id(text) == (re.fullmatch(EVENT_ID_PATTERN, text) is not None)


@given(st.one_of(_ANY_TEXT, st.from_regex(EMAIL_PATTERN, fullmatch=True), st.emails()))
@example("x@y\n")
@example("@y")
@example("x@")
@example("x@@y")
@example("x\x00@y")
@example("jane@example.com")
def test_is_email_agrees_with_its_pattern(text: str) -> None:
    assert is_email(text) == (re.fullmatch(EMAIL_PATTERN, text) is not None)


_SHAPED_FIELDS = [
    ("id", EventIn(action="a", actor=Actor(id="u"), id="abc\n")),
    ("id", EventIn(action="a", actor=Actor(id="u"), id="../../etc/passwd")),
    ("actor.email", EventIn(action="a", actor=Actor(id="u", email="no-at-sign"))),
    ("target.email", EventIn(action="a", actor=Actor(id="u"), target=Target(email="a@b@c"))),
    ("context.ip", EventIn(action="a", actor=Actor(id="u"), context=Context(ip="1.2.3.4\n"))),
]


@pytest.mark.parametrize(("field", "given_event"), _SHAPED_FIELDS)
def test_shaped_fields_are_checked_for_events_built_in_python(
    field: str, given_event: EventIn
) -> None:
    """The id, email and IP rules are not msgspec patterns (model.py), so they must hold
    however the EventIn was made; msgspec checks nothing when a struct is built in Python."""
    with pytest.raises(InvalidInput) as refused:
        normalize_event("acme", given_event, utc_now_ms(), "events[2].")
    assert [d["field"] for d in refused.value.details] == [f"events[2].{field}"]


def test_shaped_fields_accept_what_their_patterns_accept() -> None:
    given_event = EventIn(
        action="a",
        actor=Actor(id="u", email="jane@example.com"),
        id="0192f0d2-8f7a-7cc0.b5c1:x~y_z",
        target=Target(email="ops@example.org"),
        context=Context(ip="2001:db8::1"),
    )
    event = normalize_event("acme", given_event, utc_now_ms()).event
    assert (event.id, event.actor.email) == ("0192f0d2-8f7a-7cc0.b5c1:x~y_z", "jane@example.com")


_TEXT_FIELDS = [
    ("action", {"action": "a\x00"}),
    ("type", {"type": "a\x00"}),
    ("source", {"source": "a\x00"}),
    ("actor.id", {"actor": {"id": "a\x00"}}),
    ("actor.name", {"actor": {"id": "u", "name": "a\x00"}}),
    ("actor.type", {"actor": {"id": "u", "type": "a\x00"}}),
    ("actor.status", {"actor": {"id": "u", "status": "a\x00"}}),
    ("target.type", {"target": {"type": "a\x00"}}),
    ("target.id", {"target": {"id": "a\x00"}}),
    ("target.name", {"target": {"name": "a\x00"}}),
    ("context.user_agent", {"context": {"user_agent": "a\x00"}}),
]


@pytest.mark.parametrize(("field", "change"), _TEXT_FIELDS, ids=[f for f, _ in _TEXT_FIELDS])
def test_nul_is_refused_in_every_text_field(field: str, change: dict[str, object]) -> None:
    """PostgreSQL cannot store NUL; the check lives in normalize_event (see model.py)."""
    given = msgspec.convert({"action": "a", "actor": {"id": "u"}, **change}, EventIn)
    with pytest.raises(InvalidInput) as refused:
        normalize_event("acme", given, utc_now_ms(), "events[3].")
    assert refused.value.details == [
        {"field": f"events[3].{field}", "message": "must not contain NUL characters"}
    ]
    clean = msgspec.convert({"action": "a", "actor": {"id": "u"}}, EventIn)
    assert normalize_event("acme", clean, utc_now_ms()).event.action == "a"


_KEYS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4
)
_WIDE_INTS = st.recursive(
    st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, 2**53, -(2**53), 10**15, 10**16])
    | st.text(alphabet="0123456789.eE-", max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner),
    max_leaves=8,
)


@given(st.dictionaries(_KEYS, _WIDE_INTS, max_size=4))
def test_metadata_integers_beyond_2_pow_53_are_refused_and_only_they(metadata: dict) -> None:
    """The quick checks before the walk (digit count, regexes) must never let a large integer
    through, nor refuse anything else (digits inside strings included)."""
    given_event = msgspec.convert(
        {"action": "a", "actor": {"id": "u"}, "metadata": metadata}, EventIn
    )
    too_big = [v for v in _ints(metadata) if abs(v) > 2**53 - 1]
    if too_big:
        with pytest.raises(InvalidInput, match="2\\*\\*53"):
            normalize_event("acme", given_event, utc_now_ms())
    else:
        normalize_event("acme", given_event, utc_now_ms())


def _ints(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for item in value.values() for i in _ints(item)]
    if isinstance(value, list):
        return [i for item in value for i in _ints(item)]
    return []


@pytest.mark.parametrize(
    "metadata",
    [
        {"x": float("inf")},
        {"x": float("nan")},
        {"price": 15.0, "rate": [float("-inf")]},
        {"note": "null", "x": float("inf")},
    ],
)
def test_metadata_non_finite_numbers_from_the_python_api_are_refused(metadata: dict) -> None:
    """JSON cannot carry NaN or infinity, but a Python caller can build an EventIn with one;
    msgspec would write it as null, so the quick checks must not let it past the walk."""
    given_event = msgspec.convert(
        {"action": "a", "actor": {"id": "u"}, "metadata": metadata}, EventIn
    )
    with pytest.raises(InvalidInput, match="finite"):
        normalize_event("acme", given_event, utc_now_ms())


@given(
    st.datetimes(
        timezones=st.integers(-_DAY_MINUTES, _DAY_MINUTES).map(
            lambda minutes: timezone(timedelta(minutes=minutes))
        )
    ),
)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1))))
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))))
def test_occurred_at_anywhere_in_any_offset_is_stored_or_refused(occurred: datetime) -> None:
    """Never OverflowError: the range is checked before the value is moved to UTC (whose
    datetime does not exist before year 1 or after 9999)."""
    given = EventIn(action="a", actor=Actor(id="u"), occurred_at=occurred)
    received = utc_now_ms()
    if EPOCH <= occurred <= received + timedelta(days=1):
        stored = normalize_event("t", given, received).event.occurred_at
        assert stored.tzinfo is UTC
        assert stored == from_ms(to_ms(occurred))
        return
    with pytest.raises(InvalidInput) as refused:
        normalize_event("t", given, received)
    assert [d["field"] for d in refused.value.details] == ["occurred_at"]
