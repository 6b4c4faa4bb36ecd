"""Fast validation paths must agree exactly with the slow, obviously right ones."""

from __future__ import annotations

import ipaddress

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from trailkeeper.ledger import contains_float
from trailkeeper.service import is_ip

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
