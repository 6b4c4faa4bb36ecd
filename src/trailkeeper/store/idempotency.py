"""Deciding what a batch insert does with ids that already exist (shared by both engines).

Runs inside the engine's write transaction, after it has locked the tenant's writes, so the
answer cannot change before the insert commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trailkeeper.errors import Conflict
from trailkeeper.model import Event, NewEvent


def plan_insert(
    items: Sequence[NewEvent], stored: Mapping[str, tuple[bytes, Event]]
) -> tuple[list[NewEvent], list[tuple[str, bool]]]:
    """Split a batch into rows to insert and, per input item, (event id, created?).

    Re-sending an id with the same content is a no-op that returns the stored event; the same id
    with other content is a 409 for the whole batch. Duplicates inside one batch follow the same
    rule against the first occurrence.
    """
    to_insert: list[NewEvent] = []
    seen: dict[str, bytes] = {}
    outcome: list[tuple[str, bool]] = []
    for item in items:
        event_id = item.event.id
        previous = stored.get(event_id)
        known_hash = previous[0] if previous is not None else seen.get(event_id)
        if known_hash is None:
            seen[event_id] = item.request_hash
            to_insert.append(item)
            outcome.append((event_id, True))
        elif known_hash == item.request_hash:
            outcome.append((event_id, False))
        else:
            raise Conflict(
                f"event id {event_id!r} already exists with different content",
                details=[{"field": "id", "value": event_id}],
            )
    return to_insert, outcome


def assemble_results(
    outcome: Sequence[tuple[str, bool]],
    inserted: Sequence[Event],
    stored: Mapping[str, tuple[bytes, Event]],
) -> list[tuple[Event, bool]]:
    """Per input item: the event as stored now, and whether this call created it."""
    created = {event.id: event for event in inserted}
    return [(created.get(event_id) or stored[event_id][1], new) for event_id, new in outcome]
