"""Storage: one `Store` protocol, two engines. SQL lives only in this package.

Every engine passes the same contract suite (tests/contract). Driver errors are translated
here into `trailkeeper.errors` (a lost database is `Unavailable`, a 503), so callers never see
sqlite3 or psycopg exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from trailkeeper.config import redact_url
from trailkeeper.errors import InvalidInput
from trailkeeper.model import (
    ApiKey,
    Checkpoint,
    Direction,
    Event,
    KeyPair,
    LegalHold,
    NewEvent,
    Position,
    Tenant,
)
from trailkeeper.query import Query
from trailkeeper.streams.model import Stream


class Store(Protocol):
    """What the service needs from a database."""

    engine: str

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise `Unavailable` when the database cannot answer."""

    def stats(self) -> dict[str, int]:
        """Figures for metrics, cheap to read: PostgreSQL's pool (psycopg_pool's
        `get_stats()` names), SQLite's `writer_queue` (batches waiting for the write lock)."""

    def analyze(self) -> None:
        """Refresh the query planner's statistics, e.g. after a bulk load: without them
        PostgreSQL may scan a whole tenant instead of walking the keyset index."""

    def get_or_create_setting(self, name: str, default: str) -> str:
        """The stored value, or store `default` first (race-free across processes)."""

    def claim_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew a lease (one holder across processes and hosts until it expires)."""

    def release_lease(self, name: str, holder: str) -> None: ...

    # tenants and keys
    def create_tenant(self, tenant: Tenant) -> None: ...
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    def list_tenants(self, after: str | None = None, limit: int | None = None) -> list[Tenant]:
        """Tenants ordered by id, only those after `after`; at most `limit` (None: all)."""

    def update_tenant(self, tenant: Tenant) -> bool:
        """Store name and deactivation time; False when the tenant does not exist."""

    def create_key(self, key: ApiKey) -> None: ...
    def get_key(self, key_id: str) -> ApiKey | None: ...
    def list_keys(self, tenant: str | None) -> list[ApiKey]: ...
    def revoke_key(self, key_id: str, at: datetime) -> bool: ...
    def touch_keys(self, used: dict[str, datetime]) -> None:
        """Set `last_used_at` of several keys in one transaction (never moving one back)."""

    # events
    def insert_events(self, tenant: str, items: Sequence[NewEvent]) -> list[tuple[Event, bool]]:
        """Store a batch of valid events atomically; returns (stored event, created?) per
        item, in order.

        Raises `Conflict` (and stores nothing) when an id exists with other content.
        """

    def get_event(self, tenant: str, event_id: str) -> Event | None: ...

    def list_events(
        self,
        tenant: str,
        filters: Query,
        position: Position | None,
        direction: Direction,
        limit: int,
    ) -> list[Event]:
        """Up to `limit` events strictly past `position`, nearest first (each event's own
        position is `Position.of(event)`, so the caller can continue from any of them)."""

    def iter_events(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[Event]:
        """All matching events, oldest first, fetched in keyset chunks (constant memory)."""

    def iter_event_json(self, tenant: str, filters: Query, chunk: int = 1000) -> Iterator[bytes]:
        """`iter_events` as JSON documents (one object each, no newline) rendered by the
        database: the objects `formats.event_document` makes, for fast bulk export."""

    # key pairs for signed JWTs (Gr4vy dialect): unique per tenant, never across tenants
    def create_key_pair(self, pair: KeyPair) -> None:
        """Raises Conflict when the tenant already has a pair with this id (revoked or not)."""

    def get_key_pair(self, tenant: str, key_id: str) -> KeyPair | None: ...
    def list_key_pairs(self, tenant: str | None) -> list[KeyPair]: ...
    def revoke_key_pair(self, tenant: str, key_id: str, at: datetime) -> bool: ...

    # tamper evidence (see ledger.py)
    def ledger_head(self, tenant: str) -> tuple[int, bytes] | None:
        """(tree size, root hash) of the tenant's log, or None before its first event."""

    def ledger_nodes(
        self, tenant: str, wanted: set[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Perfect-subtree hashes by (level, index); raises if any is missing."""

    def get_checkpoint(self, tenant: str, size: int | None = None) -> Checkpoint | None: ...
    def save_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint: ...
    def tenants_behind_checkpoint(self) -> list[str]: ...

    # streams (store/streams.py; docs/streams.md)
    def create_stream(self, stream: Stream) -> None:
        """Raises Conflict when the id exists."""

    def get_stream(self, tenant: str, stream_id: str) -> Stream | None: ...
    def list_streams(self, tenant: str | None) -> list[Stream]: ...
    def update_stream_settings(
        self, tenant: str, stream_id: str, *, paused: bool | None = None, config: Any = None
    ) -> bool: ...
    def delete_stream(self, tenant: str, stream_id: str) -> bool: ...
    def move_stream(self, tenant: str, stream_id: str, position: int) -> bool:
        """Set the position (replay) and clear `failing`; False when there is no such stream."""

    def record_stream_delivery(
        self, stream_id: str, after: int, upto: int, events: int, purged: int, at: datetime
    ) -> bool:
        """Advance from `after` to `upto` (compare-and-set: False if the position moved)."""

    def record_stream_failure(
        self, stream_id: str, error: str, at: datetime, *, failing: bool
    ) -> None: ...
    def events_after(self, tenant: str, log_index: int, limit: int) -> list[Event]:
        """Up to `limit` events with a log index above `log_index`, in log order."""

    def first_log_index_since(self, tenant: str, at: datetime) -> int | None:
        """The log index of the first event received at or after `at`."""

    # retention, erasure, legal holds (store/purge.py)
    def purged_size(self, tenant: str) -> int: ...
    def purgeable(self, tenant: str, cutoff: datetime, floor: int, limit: int) -> int: ...
    def purge_batch(self, tenant: str, cutoff: datetime, limit: int) -> int: ...
    def frontier(self, tenant: str) -> tuple[int, list[bytes]]: ...
    def kept_node_count(self, tenant: str) -> int: ...
    def subject_events(self, tenant: str, kind: str, value: str) -> list[int]: ...
    def redact(
        self, tenant: str, kind: str, value: str, indexes: Sequence[int], personal: Sequence[str]
    ) -> int: ...
    def add_hold(self, hold: LegalHold) -> None: ...
    def remove_hold(self, tenant: str, hold_id: str) -> bool: ...
    def holds(self, tenant: str) -> list[LegalHold]: ...


def open_store(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    pg_pool_size: int = 10,
    timeout: float = 5.0,
    ledger: bool = True,
) -> Store:
    """Open (and migrate) the database named by `url`."""
    if url.startswith("sqlite:///"):
        from trailkeeper.store.sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite:///"),
            synchronous=sqlite_synchronous,
            timeout=timeout,
            ledger=ledger,
        )
    if url.startswith(("postgresql://", "postgres://")):
        from trailkeeper.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=pg_pool_size, timeout=timeout, ledger=ledger)
    raise InvalidInput(
        f"database URL must start with sqlite:/// or postgresql:// (got {redact_url(url)!r})"
    )
