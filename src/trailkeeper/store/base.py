"""The read side both engines share: each engine supplies placeholders, timestamp conversion
and how to run a read query; the SQL shape and row mapping are written once."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import msgspec

from trailkeeper.errors import Conflict
from trailkeeper.formats import event_document
from trailkeeper.model import (
    ApiKey,
    Checkpoint,
    Direction,
    Event,
    KeyPair,
    Position,
    Tenant,
    to_ms,
)
from trailkeeper.query import Query
from trailkeeper.store import ledger_state, sql
from trailkeeper.store.purge import RetentionStore
from trailkeeper.store.streams import StreamRows

_json = msgspec.json.Encoder()
# Credentials are read with their tenant's state: a deactivated tenant's keys are refused
# without a second query.
_SELECT_KEY = (
    "SELECT k.id, k.tenant, k.name, k.scopes, k.secret_hash, k.created_at, k.revoked_at, "
    "k.expires_at, k.last_used_at, t.deactivated_at IS NULL "
    "FROM api_keys k JOIN tenants t ON t.id = k.tenant"
)
_SELECT_TENANT = (
    "SELECT id, name, created_at, deactivated_at, retention_days, personal_metadata_keys "
    "FROM tenants"
)
_SELECT_KEY_PAIR = (
    "SELECT k.id, k.tenant, k.name, k.public_key, k.created_at, k.revoked_at, "
    "t.deactivated_at IS NULL FROM key_pairs k JOIN tenants t ON t.id = k.tenant"
)


class SqlReads(StreamRows, RetentionStore):
    """Read queries over `_fetch`; subclasses set the engine specifics below."""

    ph: str  # parameter placeholder
    to_db: Callable[[datetime], Any]  # timestamp -> stored value
    from_db: Callable[[Any], datetime]  # stored value -> timestamp
    position_ts: Callable[[int], Any]  # cursor milliseconds -> stored value
    export_readers = 1  # export ranges fetched at once (see _rendered_chunks)

    def _fetch(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _writer(self) -> AbstractContextManager[ledger_state.Runner]:
        """A write transaction (committed on success, rolled back on error)."""
        raise NotImplementedError

    @property
    def _reads(self) -> ledger_state.Runner:
        return _ReadRunner(self.ph, self._fetch)

    # ---- ledger -------------------------------------------------------------------------

    def ledger_head(self, tenant: str) -> tuple[int, bytes] | None:
        return ledger_state.head(self._reads, tenant)

    def ledger_nodes(
        self, tenant: str, wanted: set[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        return ledger_state.fetch_nodes(self._reads, tenant, wanted)

    def get_checkpoint(self, tenant: str, size: int | None = None) -> Checkpoint | None:
        """The checkpoint at `size`, or the largest one when `size` is None."""
        where = f"tenant = {self.ph}" + ("" if size is None else f" AND size = {self.ph}")
        params = (tenant,) if size is None else (tenant, size)
        rows = self._fetch(
            f"SELECT size, root, created_at, note FROM checkpoints WHERE {where} "
            "ORDER BY size DESC LIMIT 1",
            params,
        )
        if not rows:
            return None
        size_, root, created_at, note = rows[0]
        return Checkpoint(
            tenant=tenant,
            size=int(size_),
            root=bytes(root),
            created_at=self.from_db(created_at),
            note=note,
        )

    def save_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        """Store a checkpoint; if one exists at that size already, that one is kept."""
        ph = self.ph
        with self._writer() as db:
            db.rows(
                f"INSERT INTO checkpoints (tenant, size, root, created_at, note) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT DO NOTHING RETURNING size",
                (
                    checkpoint.tenant,
                    checkpoint.size,
                    checkpoint.root,
                    self.to_db(checkpoint.created_at),
                    checkpoint.note,
                ),
            )
        stored = self.get_checkpoint(checkpoint.tenant, checkpoint.size)
        assert stored is not None
        return stored

    def tenants_behind_checkpoint(self) -> list[str]:
        """Tenants whose log grew since their latest checkpoint."""
        rows = self._fetch(
            "SELECT h.tenant FROM ledger_heads h WHERE h.size > coalesce("
            "(SELECT max(c.size) FROM checkpoints c WHERE c.tenant = h.tenant), 0) "
            "ORDER BY h.tenant",
            (),
        )
        return [str(r[0]) for r in rows]

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = self._fetch(f"{_SELECT_TENANT} WHERE id = {self.ph}", (tenant_id,))
        return self._tenant(rows[0]) if rows else None

    def list_tenants(self, after: str | None = None, limit: int | None = None) -> list[Tenant]:
        """Tenants by id, those after `after` only; at most `limit` (None: all)."""
        where, params = ("", []) if after is None else (f" WHERE id > {self.ph}", [after])
        bound = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._fetch(f"{_SELECT_TENANT}{where} ORDER BY id{bound}", params)
        return [self._tenant(r) for r in rows]

    def update_tenant(self, tenant: Tenant) -> bool:
        """Store the tenant's name, deactivation time and retention settings; False when there
        is no such tenant."""
        ph = self.ph
        deactivated = None if tenant.deactivated_at is None else self.to_db(tenant.deactivated_at)
        personal = _json.encode(list(tenant.personal_metadata_keys)).decode()
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE tenants SET name = {ph}, deactivated_at = {ph}, retention_days = {ph}, "
                f"personal_metadata_keys = {ph} WHERE id = {ph} RETURNING id",
                (tenant.name, deactivated, tenant.retention_days, personal, tenant.id),
            )
        return bool(rows)

    def get_key(self, key_id: str) -> ApiKey | None:
        rows = self._fetch(f"{_SELECT_KEY} WHERE k.id = {self.ph}", (key_id,))
        return self._key(rows[0]) if rows else None

    def list_keys(self, tenant: str | None) -> list[ApiKey]:
        if tenant is None:
            rows = self._fetch(f"{_SELECT_KEY} ORDER BY k.tenant, k.created_at, k.id", ())
        else:
            rows = self._fetch(
                f"{_SELECT_KEY} WHERE k.tenant = {self.ph} ORDER BY k.created_at, k.id", (tenant,)
            )
        return [self._key(r) for r in rows]

    def touch_keys(self, used: dict[str, datetime]) -> None:
        """Record when keys were last used, all in one transaction (never moving a time back)."""
        if not used:
            return
        ph = self.ph
        rows = [(self.to_db(at), key_id, self.to_db(at)) for key_id, at in sorted(used.items())]
        with self._writer() as db:
            db.update_rows(
                f"UPDATE api_keys SET last_used_at = {ph} WHERE id = {ph} "
                f"AND (last_used_at IS NULL OR last_used_at < {ph})",
                rows,
            )

    # ---- settings and API keys (writes shared by both engines) --------------------------

    def get_or_create_setting(self, name: str, default: str) -> str:
        ph = self.ph
        with self._writer() as db:
            db.rows(
                f"INSERT INTO settings (name, value) VALUES ({ph}, {ph}) "
                "ON CONFLICT DO NOTHING RETURNING name",
                (name, default),
            )
            rows = db.rows(f"SELECT value FROM settings WHERE name = {ph}", (name,))
        return str(rows[0][0])

    def claim_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew the lease `name` for `holder` until `now_ms + ttl_ms`, unless someone
        else holds it unexpired. Kept as a settings row, decided under the write lock of a name
        no tenant can have (PostgreSQL's advisory lock; SQLite's database lock), so exactly one
        process of any host wins."""
        ph, row = self.ph, f"lease:{name}"
        with self._writer() as db:
            db.lock_tenant(row)
            found = db.rows(f"SELECT value FROM settings WHERE name = {ph}", (row,))
            if found:
                current, _, until = str(found[0][0]).rpartition(" ")
                if current != holder and int(until) > now_ms:
                    return False
            db.rows(
                f"INSERT INTO settings (name, value) VALUES ({ph}, {ph}) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value RETURNING name",
                (row, f"{holder} {now_ms + ttl_ms}"),
            )
        return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (if `holder` has it), so another process need not wait it out."""
        ph = self.ph
        with self._writer() as db:
            db.rows(
                f"DELETE FROM settings WHERE name = {ph} AND value LIKE {ph} RETURNING name",
                (f"lease:{name}", f"{holder} %"),
            )

    def create_key(self, key: ApiKey) -> None:
        ph = self.ph
        with self._writer() as db:
            inserted = db.rows(
                "INSERT INTO api_keys "
                "(id, tenant, name, scopes, secret_hash, created_at, expires_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (
                    key.id,
                    key.tenant,
                    key.name,
                    " ".join(key.scopes),
                    key.secret_hash,
                    self.to_db(key.created_at),
                    None if key.expires_at is None else self.to_db(key.expires_at),
                ),
            )
        if not inserted:  # ids are random: only a caller reusing one gets here
            raise Conflict(f"API key {key.id!r} already exists")

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE api_keys SET revoked_at = {ph} WHERE id = {ph} AND revoked_at IS NULL "
                "RETURNING id",
                (self.to_db(at), key_id),
            )
        return bool(rows)

    # ---- key pairs (public keys for signed JWTs) -----------------------------------------

    def create_key_pair(self, pair: KeyPair) -> None:
        ph = self.ph
        # ON CONFLICT, not a lookup first: two registrations of one key racing on PostgreSQL
        # would both find nothing and the second would fail on the primary key (a 500).
        with self._writer() as db:
            inserted = db.rows(
                f"INSERT INTO key_pairs (id, tenant, name, public_key, created_at) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT DO NOTHING RETURNING id",
                (pair.id, pair.tenant, pair.name, pair.public_key, self.to_db(pair.created_at)),
            )
        if not inserted:
            raise Conflict(f"key pair {pair.id!r} is already registered in this tenant")

    def get_key_pair(self, tenant: str, key_id: str) -> KeyPair | None:
        where = f"WHERE k.tenant = {self.ph} AND k.id = {self.ph}"
        rows = self._fetch(f"{_SELECT_KEY_PAIR} {where}", (tenant, key_id))
        return self._key_pair(rows[0]) if rows else None

    def list_key_pairs(self, tenant: str | None) -> list[KeyPair]:
        if tenant is None:
            rows = self._fetch(f"{_SELECT_KEY_PAIR} ORDER BY k.tenant, k.created_at", ())
        else:
            rows = self._fetch(
                f"{_SELECT_KEY_PAIR} WHERE k.tenant = {self.ph} ORDER BY k.created_at", (tenant,)
            )
        return [self._key_pair(r) for r in rows]

    def revoke_key_pair(self, tenant: str, key_id: str, at: datetime) -> bool:
        ph = self.ph
        with self._writer() as db:
            rows = db.rows(
                f"UPDATE key_pairs SET revoked_at = {ph} "
                f"WHERE tenant = {ph} AND id = {ph} AND revoked_at IS NULL RETURNING id",
                (self.to_db(at), tenant, key_id),
            )
        return bool(rows)

    def _key_pair(self, row: Sequence[Any]) -> KeyPair:
        return KeyPair(
            id=row[0],
            tenant=row[1],
            name=row[2],
            public_key=row[3],
            created_at=self.from_db(row[4]),
            revoked_at=None if row[5] is None else self.from_db(row[5]),
            tenant_active=bool(row[6]),
        )

    def get_event(self, tenant: str, event_id: str) -> Event | None:
        rows = self._fetch(
            f"SELECT {sql.SELECT_EVENT} FROM events WHERE tenant = {self.ph} AND id = {self.ph}",
            (tenant, event_id),
        )
        return sql.row_to_event(rows[0], self.from_db) if rows else None

    def list_events(
        self,
        tenant: str,
        filters: Query,
        position: Position | None,
        direction: Direction,
        limit: int,
    ) -> list[Event]:
        query, params = sql.page_query(
            tenant, filters, position, direction, limit, self.ph, self.position_ts
        )
        return [sql.row_to_event(row, self.from_db) for row in self._fetch(query, params)]

    def iter_events(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[Event]:
        """Export support: all matches oldest first in keyset chunks, so memory stays flat."""
        position: Position | None = None
        while True:
            events = self.list_events(tenant, filters, position, Direction.NEWER, chunk)
            yield from events
            if len(events) < chunk:
                return
            position = Position.of(events[-1])

    def iter_event_json(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[bytes]:
        """`iter_events`, each event encoded as its JSON document (engines may do better)."""
        encode = _json.encode
        for event in self.iter_events(tenant, filters, chunk):
            yield encode(event_document(event))

    def _rendered_chunks(
        self, tenant: str, filters: Query, chunk: int, columns: str, outer: str = "{}"
    ) -> Iterator[list[Sequence[Any]]]:
        """Rows of `columns` for all matches, oldest first, in ranges of about `chunk` (each
        range's query formatted into `outer`, which may aggregate it).

        For exports whose rows the database renders: the ranges' ends come from a cheap
        index-only query, so `export_readers` ranges are fetched at once, each on its own
        connection and thread, while the consumer writes out the one before. At most that many
        ranges wait ahead of the consumer, and no connection is held while it is slow.
        """
        readers = ThreadPoolExecutor(self.export_readers, thread_name_prefix="trailkeeper-export")
        pending: deque[Future[list[Sequence[Any]]]] = deque()
        try:
            for after, upto in self._export_ranges(tenant, filters, chunk):
                query, params = sql.range_query(
                    tenant, filters, after, upto, self.ph, self.position_ts, columns
                )
                pending.append(readers.submit(self._fetch, outer.format(query), params))
                while len(pending) > self.export_readers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            readers.shutdown(wait=True, cancel_futures=True)

    def _export_ranges(
        self, tenant: str, filters: Query, chunk: int
    ) -> Iterator[tuple[Position | None, Position | None]]:
        """Consecutive (after, upto] ranges covering every match; the last is open-ended."""
        after: Position | None = None
        while True:
            query, params = sql.boundary_query(
                tenant, filters, after, chunk, self.ph, self.position_ts
            )
            rows = self._fetch(query, params)
            if not rows:
                yield after, None
                return
            upto = Position(to_ms(self.from_db(rows[0][0])), int(rows[0][1]))
            yield after, upto
            after = upto

    def _tenant(self, row: Sequence[Any]) -> Tenant:
        return Tenant(
            id=row[0],
            name=row[1],
            created_at=self.from_db(row[2]),
            deactivated_at=None if row[3] is None else self.from_db(row[3]),
            retention_days=None if row[4] is None else int(row[4]),
            personal_metadata_keys=tuple(msgspec.json.decode(row[5] or "[]")),
        )

    def _key(self, row: Sequence[Any]) -> ApiKey:
        return ApiKey(
            id=row[0],
            tenant=row[1],
            name=row[2],
            scopes=tuple(row[3].split()),
            secret_hash=bytes(row[4]),
            created_at=self.from_db(row[5]),
            revoked_at=None if row[6] is None else self.from_db(row[6]),
            expires_at=None if row[7] is None else self.from_db(row[7]),
            last_used_at=None if row[8] is None else self.from_db(row[8]),
            tenant_active=bool(row[9]),
        )


class _ReadRunner:
    """Lets the shared ledger SQL run on read connections."""

    def __init__(self, ph: str, fetch: Callable[[str, Sequence[Any]], list[Sequence[Any]]]) -> None:
        self.ph = ph
        self._fetch = fetch

    def rows(self, query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self._fetch(query, params)

    def lock_tenant(self, tenant: str) -> None:
        raise TypeError("read-only")

    def update_rows(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        raise TypeError("read-only")

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        raise TypeError("read-only")
