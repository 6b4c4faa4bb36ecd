"""Deciding what a batch insert does with ids that already exist (shared by both engines).

Runs inside the engine's write transaction, after it has locked the tenant's writes, so the
answer cannot change before the insert commits.

A reused id is a replay when the client described the same event: the same content (every
field of `model.FIELDS` the client sets) and, if it gave one, the same occurred_at
(docs/events.md). That is decided by comparing with the stored row only when an id is reused,
rather than by fingerprinting every event on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec

from trailkeeper.errors import Conflict
from trailkeeper.model import FIELDS, Event, NewEvent, field_values

_sorted = msgspec.json.Encoder(order="sorted")


class StoredEvent(NamedTuple):
    """A stored event with what tells a replay of it (column occurred_at_given)."""

    occurred_given: bool
    event: Event


_GIVEN = [not field.server for field in FIELDS]
_OCCURRED = [field.path for field in FIELDS].index("occurred_at")


def replay_key(event: Event, occurred_given: bool) -> bytes:
    """What must match for a reused id to be a replay, as one canonical encoding (metadata keys
    in any order)."""
    values = field_values(event)
    if not occurred_given:
        values[_OCCURRED] = None
    return _sorted.encode([value for value, given in zip(values, _GIVEN, strict=True) if given])


def _same(item: NewEvent, stored: StoredEvent) -> bool:
    return replay_key(item.event, item.occurred_given) == replay_key(
        stored.event, stored.occurred_given
    )


def plan_insert(
    items: Sequence[NewEvent], stored: Mapping[str, StoredEvent]
) -> tuple[list[NewEvent], list[tuple[str, bool]]]:
    """Split a batch into rows to insert and, per input item, (event id, created?).

    Re-sending an id with the same content is a no-op that returns the stored event; the same id
    with other content is a 409 for the whole batch. Duplicates inside one batch follow the same
    rule against the first occurrence.
    """
    to_insert: list[NewEvent] = []
    first_seen: dict[str, bytes] = {}  # id -> replay key of its first occurrence in the batch
    outcome: list[tuple[str, bool]] = []
    for item in items:
        event_id = item.event.id
        previous = stored.get(event_id)
        if previous is not None:
            same = _same(item, previous)
        else:
            key = replay_key(item.event, item.occurred_given)
            first = first_seen.get(event_id)
            if first is None:
                first_seen[event_id] = key
                to_insert.append(item)
                outcome.append((event_id, True))
                continue
            same = first == key
        if not same:
            raise Conflict(
                f"event id {event_id!r} already exists with different content",
                details=[{"field": "id", "value": event_id}],
            )
        outcome.append((event_id, False))
    return to_insert, outcome


def assemble_results(
    outcome: Sequence[tuple[str, bool]],
    inserted: Sequence[Event],
    stored: Mapping[str, StoredEvent],
) -> list[tuple[Event, bool]]:
    """Per input item: the event as stored now, and whether this call created it."""
    created = {event.id: event for event in inserted}
    return [(created.get(event_id) or stored[event_id].event, new) for event_id, new in outcome]
