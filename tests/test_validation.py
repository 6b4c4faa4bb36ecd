"""Fast validation paths must agree exactly with the slow, obviously right ones."""

from __future__ import annotations

import ipaddress

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trailkeeper.errors import InvalidInput
from trailkeeper.ledger import contains_float
from trailkeeper.model import EventIn, utc_now_ms
from trailkeeper.validation import is_ip, normalize_event

_IP_CHARS = st.text(alphabet="0123456789abcdefABCDEF:.", min_size=2, max_size=45)
_OCTET = st.integers(min_value=0, max_value=255)


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
    )
)
@example("01.2.3.4")
@example("::ffff:1.2.3.4")
@example("1:2:3:4:5:6:1.2.3.4")
@example("1::2::3")
@example("00000::1")
def test_is_ip_agrees_with_ipaddress(text: str) -> None:
    assert is_ip(text) == _reference_is_ip(text)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


@given(_JSON)
@example({"version": "5.0", "n": 3})
@example({"x": 1.0})
@example({"x": 1e300})
def test_contains_float_finds_exactly_the_floats(value: object) -> None:
    assert contains_float(msgspec.json.encode(value)) == _has_float(value)


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
