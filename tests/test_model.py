"""The time helpers every layer relies on: one UTC, millisecond representation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.model import format_ms, format_ts, from_ms, to_ms

_EARLIEST = to_ms(datetime(1, 1, 1, tzinfo=UTC))
_LATEST = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))


def _reference(value: datetime) -> str:
    """The obvious (slow) formatting that format_ms must reproduce exactly."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.integers(min_value=_EARLIEST, max_value=_LATEST))
def test_format_ms_matches_isoformat_over_the_whole_range(ms: int) -> None:
    assert format_ms(ms) == _reference(from_ms(ms))
    assert to_ms(from_ms(ms)) == ms


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_format_ts_is_utc_and_truncates_to_milliseconds(value: datetime, offset: int) -> None:
    shifted = value.astimezone(timezone(timedelta(minutes=offset)))
    assert format_ts(shifted) == _reference(value)


@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_format_ts_of_utc_datetimes_from_their_fields(values: list[datetime]) -> None:
    """UTC datetimes are formatted from their own fields once their day is known (the first
    of a day goes through milliseconds): both ways give the same text."""
    for value in values + [value + timedelta(microseconds=1) for value in values]:
        assert format_ts(value) == _reference(value)


def test_format_ms_edges() -> None:
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert format_ms(_EARLIEST) == "0001-01-01T00:00:00.000Z"
    assert format_ms(_LATEST) == "9999-12-31T23:59:59.999Z"
    assert format_ms(1_657_060_224_662) == "2022-07-05T22:30:24.662Z"


# ---- the positional mappings against the field table, field by field (issue 24) -------------


def _generic_document(event: Any) -> dict[str, Any]:
    """The public document walked from `FIELDS` by path, the slow obvious way."""
    from trailkeeper.formats import public_value
    from trailkeeper.model import FIELDS

    document: dict[str, Any] = {}
    for field in FIELDS:
        head, _, rest = field.path.partition(".")
        value = getattr(event, head)
        if not rest:
            document[head] = public_value(field, value)
        elif value is None:
            document[head] = None
        else:
            document.setdefault(head, {})[rest] = getattr(value, rest)
    return document


@pytest.mark.parametrize("nested", [True, False])
def test_positional_mappings_match_the_field_table(nested: bool) -> None:
    import msgspec

    from trailkeeper.api.native import to_view
    from trailkeeper.formats import event_document
    from trailkeeper.model import Actor, Context, Event, Target, from_ms, to_ms
    from trailkeeper.store import sql

    event = Event(
        id="e-1",
        tenant="acme",
        occurred_at=datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC),
        received_at=datetime(5, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        action="user.login",
        actor=Actor(id="u", name="N", email="a@b", type="user", staff=False, status="ok"),
        outcome="failure",
        type="t",
        target=Target(type="tt", id="ti", name="tn", email="c@d") if nested else None,
        source="api",
        context=Context(ip="203.0.113.7", user_agent="ua") if nested else None,
        metadata={"k": [1, 2.5, None]},
        log_index=7,
        leaf_hash=bytes(range(32)),
        seq=9,
    )
    document = _generic_document(event)
    assert event_document(event) == document
    assert msgspec.to_builtins(to_view(event)) == document
    row = sql.event_row(event, True, to_ms)[:-1]
    assert sql.row_to_event(row, from_ms) == event
