"""Behaviour both engines share on top of their own `list_events`."""

from __future__ import annotations

from collections.abc import Iterator

from trailkeeper.model import Direction, Event, EventFilter, Position, to_ms


class EventIteration:
    """Export support: walk all matches oldest first in keyset chunks, so memory stays flat."""

    def list_events(
        self,
        tenant: str,
        filters: EventFilter,
        position: Position | None,
        direction: Direction,
        limit: int,
    ) -> list[Event]:
        raise NotImplementedError

    def iter_events(self, tenant: str, filters: EventFilter, chunk: int = 1000) -> Iterator[Event]:
        position: Position | None = None
        while True:
            batch = self.list_events(tenant, filters, position, Direction.NEWER, chunk)
            yield from batch
            if len(batch) < chunk:
                return
            last = batch[-1]
            position = Position(occurred_ms=to_ms(last.occurred_at), seq=last.seq)
