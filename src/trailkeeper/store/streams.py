"""Stream rows and the delivery read, shared by both engines (mixed into `SqlReads`).

Positions move by compare-and-set: a delivery advances a stream only from the position it
read, so a replay made meanwhile (or a second deliverer after a lease expired) is never
overwritten by a stale batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import msgspec

from trailkeeper.errors import Conflict
from trailkeeper.model import Event
from trailkeeper.store import ledger_state, sql
from trailkeeper.streams.model import Filters, Stream

_COLUMNS = (
    "id, tenant, name, destination, config, filters, position, batch_size, batch_wait_ms, "
    "paused, failing, created_at, last_success_at, last_error, last_error_at, deliveries, "
    "delivered_events, failures, purged"
)
_filters = msgspec.json.Decoder(Filters)
_config = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode
MAX_ERROR_CHARS = 1000


class StreamRows:
    ph: str
    to_db: Callable[[datetime], Any]
    from_db: Callable[[Any], datetime]

    def _fetch(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _writer(self) -> AbstractContextManager[ledger_state.Runner]:
        raise NotImplementedError

    def create_stream(self, stream: Stream) -> None:
        ph = self.ph
        with self._writer() as db:
            inserted = db.rows(
                f"INSERT INTO streams (id, tenant, name, destination, config, filters, position, "
                f"batch_size, batch_wait_ms, paused, created_at) VALUES "
                f"({', '.join([ph] * 11)}) ON CONFLICT DO NOTHING RETURNING id",
                (
                    stream.id,
                    stream.tenant,
                    stream.name,
                    stream.destination,
                    _encode(stream.config).decode(),
                    _encode(stream.filters).decode(),
                    stream.position,
                    stream.batch_size,
                    stream.batch_wait_ms,
                    stream.paused,
                    self.to_db(stream.created_at),
                ),
            )
        if not inserted:
            raise Conflict(f"stream {stream.id!r} already exists")

    def get_stream(self, tenant: str, stream_id: str) -> Stream | None:
        ph = self.ph
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM streams WHERE tenant = {ph} AND id = {ph}", (tenant, stream_id)
        )
        return self._stream(rows[0]) if rows else None

    def list_streams(self, tenant: str | None) -> list[Stream]:
        """A tenant's streams, oldest first; every tenant's (by tenant) when None."""
        if tenant is None:
            rows = self._fetch(f"SELECT {_COLUMNS} FROM streams ORDER BY tenant, created_at", ())
        else:
            rows = self._fetch(
                f"SELECT {_COLUMNS} FROM streams WHERE tenant = {self.ph} ORDER BY created_at, id",
                (tenant,),
            )
        return [self._stream(r) for r in rows]

    def update_stream_settings(
        self, tenant: str, stream_id: str, *, paused: bool | None = None, config: Any = None
    ) -> bool:
        """Set `paused` and/or replace `config`; False when there is no such stream."""
        ph = self.ph
        sets: list[str] = []
        params: list[Any] = []
        if paused is not None:
            sets.append(f"paused = {ph}")
            params.append(paused)
        if config is not None:
            sets.append(f"config = {ph}")
            params.append(_encode(config).decode())
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE streams SET {', '.join(sets) or 'id = id'} "
                f"WHERE tenant = {ph} AND id = {ph} RETURNING id",
                (*params, tenant, stream_id),
            )
        return bool(rows)

    def delete_stream(self, tenant: str, stream_id: str) -> bool:
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"DELETE FROM streams WHERE tenant = {ph} AND id = {ph} RETURNING id",
                (tenant, stream_id),
            )
        return bool(rows)

    def move_stream(self, tenant: str, stream_id: str, position: int) -> bool:
        """Replay: set the position whatever it was, and clear `failing` (a fresh start)."""
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE streams SET position = {ph}, failing = {ph} "
                f"WHERE tenant = {ph} AND id = {ph} RETURNING id",
                (position, False, tenant, stream_id),
            )
        return bool(rows)

    def record_stream_delivery(
        self, stream_id: str, after: int, upto: int, events: int, purged: int, at: datetime
    ) -> bool:
        """The destination acknowledged everything up to log index `upto` (`events` sent,
        `purged` found missing): advance from `after`, or do nothing (False) when the position
        moved meanwhile."""
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE streams SET position = {ph}, failing = {ph}, last_success_at = {ph}, "
                f"deliveries = deliveries + {ph}, delivered_events = delivered_events + {ph}, "
                f"purged = purged + {ph} WHERE id = {ph} AND position = {ph} RETURNING id",
                (upto, False, self.to_db(at), 1 if events else 0, events, purged, stream_id, after),
            )
        return bool(rows)

    def record_stream_failure(
        self, stream_id: str, error: str, at: datetime, *, failing: bool
    ) -> None:
        """One failed attempt; `failing` once the retry budget is spent (never cleared here)."""
        ph = self.ph
        failing_sql = f"failing = {ph}" if failing else "failing = failing"
        params: list[Any] = [error[:MAX_ERROR_CHARS], self.to_db(at)]
        if failing:
            params.append(True)
        with self._writer() as db:
            db.rows(
                f"UPDATE streams SET last_error = {ph}, last_error_at = {ph}, {failing_sql}, "
                f"failures = failures + 1 WHERE id = {ph} RETURNING id",
                (*params, stream_id),
            )

    def events_after(self, tenant: str, log_index: int, limit: int) -> list[Event]:
        """Up to `limit` events with a log index above `log_index`, in log order (the walk of
        the unique (tenant, log_index) index)."""
        ph = self.ph
        rows = self._fetch(
            f"SELECT {sql.SELECT_EVENT} FROM events WHERE tenant = {ph} AND log_index > {ph} "
            f"ORDER BY log_index LIMIT {ph}",
            (tenant, log_index, limit),
        )
        return [sql.row_to_event(row, self.from_db) for row in rows]

    def first_log_index_since(self, tenant: str, at: datetime) -> int | None:
        """The log index of the first event received at or after `at` (None: none was).
        Receive times follow log order, up to the clocks of several servers."""
        ph = self.ph
        rows = self._fetch(
            f"SELECT min(log_index) FROM events WHERE tenant = {ph} AND received_at >= {ph}",
            (tenant, self.to_db(at)),
        )
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _stream(self, row: Sequence[Any]) -> Stream:
        from_db = self.from_db
        return Stream(
            id=row[0],
            tenant=row[1],
            name=row[2],
            destination=row[3],
            config=_config.decode(row[4]),
            filters=_filters.decode(row[5]),
            position=int(row[6]),
            batch_size=int(row[7]),
            batch_wait_ms=int(row[8]),
            paused=bool(row[9]),
            failing=bool(row[10]),
            created_at=from_db(row[11]),
            last_success_at=None if row[12] is None else from_db(row[12]),
            last_error=row[13],
            last_error_at=None if row[14] is None else from_db(row[14]),
            deliveries=int(row[15]),
            delivered_events=int(row[16]),
            failures=int(row[17]),
            purged=int(row[18]),
        )
