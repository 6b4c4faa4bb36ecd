"""Use-cases: ingest, read, page, export, and the key/tenant administration behind them.

This is the only caller of `Store`. HTTP dialects and the CLI translate their inputs into these
calls and the results back into their own shapes; the rules (paging, tenant checks, and,
through validation.py, checks beyond types) live here once.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from cachetools import TTLCache

from trailkeeper import auth
from trailkeeper.cursor import CursorCodec, cursor_scope
from trailkeeper.errors import InvalidInput, NotFound, Unauthenticated
from trailkeeper.formats import EXPORT_FORMATS, Page, csv_chunks, jsonl_chunks
from trailkeeper.ledger import (
    Signer,
    consistency_ranges,
    hash_ranges,
    inclusion_ranges,
    nodes_for,
)
from trailkeeper.model import (
    MAX_BATCH,
    MAX_PAGE,
    ApiKey,
    Checkpoint,
    Direction,
    Event,
    EventFilter,
    EventIn,
    KeyPair,
    Position,
    Tenant,
    utc_now_ms,
)
from trailkeeper.store import Store
from trailkeeper.validation import EventBatch, check_filters, checked_events
from trailkeeper.verifier import EMPTY_ROOT

_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AuditService:
    """The application: one instance per process, shared by all requests (thread-safe)."""

    def __init__(
        self,
        store: Store,
        *,
        secret: str = "",
        clock: Callable[[], datetime] = utc_now_ms,
        log_origin: str = "trailkeeper.local",
        signing_key: str = "",
        credential_cache_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self._clock = clock
        # API keys and key pairs, looked up once per `credential_cache_seconds` instead of per
        # request (a database round trip each). Revoking through this service drops the entry
        # at once; a revocation made elsewhere (another worker, the CLI) applies within the
        # TTL. Unknown ids are never cached.
        self._credentials: TTLCache[tuple[str, ...], ApiKey | KeyPair] | None = (
            TTLCache(maxsize=10_000, ttl=credential_cache_seconds)
            if credential_cache_seconds > 0
            else None
        )
        self._credentials_lock = threading.Lock()
        key = secret or store.get_or_create_setting("cursor_secret", secrets.token_hex(32))
        self._cursors = CursorCodec(key.encode("utf-8"))
        # Viewer tokens are signed with a key derived from the same secret (api/viewer.py).
        self.viewer_key = hmac.new(key.encode(), b"trailkeeper viewer tokens", "sha256").digest()
        seed = signing_key or store.get_or_create_setting(
            "checkpoint_signing_key", base64.b64encode(secrets.token_bytes(32)).decode()
        )
        self.log_origin = log_origin
        self.signer = Signer(log_origin, base64.b64decode(seed))

    def close(self) -> None:
        self.store.close()

    def database_stats(self) -> dict[str, int]:
        """Connection-pool and write-queue figures, for metrics."""
        return self.store.stats()

    def check_health(self) -> None:
        self.store.ping()

    # ---- tenants and keys ----------------------------------------------------------------

    def create_tenant(self, tenant_id: str, name: str | None = None) -> Tenant:
        if not _TENANT_ID.match(tenant_id):
            raise InvalidInput(
                "tenant id must be 1-64 characters: lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        tenant = Tenant(id=tenant_id, name=name or tenant_id, created_at=self._clock())
        self.store.create_tenant(tenant)
        return tenant

    def list_tenants(self) -> list[Tenant]:
        return self.store.list_tenants()

    def require_tenant(self, tenant_id: str) -> Tenant:
        tenant = self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return tenant

    def create_key(
        self, tenant_id: str, name: str, scopes: Iterable[str] = auth.ALL_SCOPES
    ) -> tuple[ApiKey, str]:
        """Returns the stored key and its token; the token is never retrievable again."""
        self.require_tenant(tenant_id)
        if not 1 <= len(name) <= 100:
            raise InvalidInput("key name must be 1-100 characters")
        key, token = auth.new_key(tenant_id, name, scopes)
        self.store.create_key(key)
        return key, token

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        return self.store.list_keys(tenant_id)

    def revoke_key(self, key_id: str) -> None:
        self._forget_credential(("key", key_id))
        if not self.store.revoke_key(key_id, self._clock()):
            key = self.store.get_key(key_id)
            if key is None:
                raise NotFound(f"no API key {key_id!r}")
            # already revoked: revoking again is harmless

    def add_key_pair(self, tenant_id: str, name: str, public_key_pem: str) -> KeyPair:
        """Register the public half of a client's key pair; its thumbprint becomes the id.

        Unique per tenant: registering a key this tenant already has (even revoked: a revoked
        key stays dead) is a 409; whether other tenants hold the same key is never consulted.
        """
        self.require_tenant(tenant_id)
        if not 1 <= len(name) <= 100 or _CONTROL.search(name):
            raise InvalidInput(
                "key pair name must be 1-100 characters, without control characters (NUL, ...)",
                details=[{"field": "name", "message": "1-100 characters, no control characters"}],
            )
        key = auth.load_public_key(public_key_pem)
        pair = KeyPair(
            id=auth.jwk_thumbprint(key),
            tenant=tenant_id,
            name=name,
            public_key=auth.public_pem(key),
            created_at=self._clock(),
        )
        self.store.create_key_pair(pair)
        return pair

    def generate_key_pair(self, tenant_id: str, name: str) -> tuple[KeyPair, str]:
        """Make a key pair; only its public key is kept, the private key PEM is returned once."""
        public_key, private_pem = auth.generate_private_key()
        return self.add_key_pair(tenant_id, name, auth.public_pem(public_key)), private_pem

    def list_key_pairs(self, tenant_id: str | None = None) -> list[KeyPair]:
        return self.store.list_key_pairs(tenant_id)

    def revoke_key_pair(self, key_id: str, tenant_id: str | None = None) -> None:
        """Revoke the tenant's pair (another tenant's, or an id no pair can have, is a 404).
        Without `tenant_id` (the CLI): the one tenant holding that id, or a 400 naming them."""
        if not auth.KEY_PAIR_ID.match(key_id):
            raise NotFound(f"no key pair {key_id!r}")
        if tenant_id is None:
            tenant_id = self._only_tenant_with_key_pair(key_id)
        if self.store.get_key_pair(tenant_id, key_id) is None:
            raise NotFound(f"no key pair {key_id!r}")
        self._forget_credential(("key_pair", tenant_id, key_id))
        self.store.revoke_key_pair(tenant_id, key_id, self._clock())

    def _only_tenant_with_key_pair(self, key_id: str) -> str:
        tenants = [p.tenant for p in self.store.list_key_pairs(None) if p.id == key_id]
        if not tenants:
            raise NotFound(f"no key pair {key_id!r}")
        if len(tenants) > 1:
            raise InvalidInput(
                f"key pair {key_id!r} is registered by tenants {', '.join(tenants)}: "
                "name the tenant (--tenant)"
            )
        return tenants[0]

    def bootstrap(self) -> str | None:
        """On an empty database, create tenant `default` and a key; returns its token once."""
        if self.store.list_tenants():
            return None
        self.create_tenant("default", "Default tenant")
        _, token = self.create_key("default", "bootstrap")
        return token

    def authenticate(
        self, authorization: str | None, *, jwt_tenant: str | None = None
    ) -> auth.Principal:
        """Check an `Authorization: Bearer <API key or signed JWT>` header value.

        A key-pair JWT is accepted only where the caller names the tenant whose pairs to look
        in (`jwt_tenant`: the Gr4vy merchant account); everywhere else it is a 401. Key pairs
        are unique per tenant only, so a kid alone could name several tenants' pairs."""
        if not authorization:
            raise Unauthenticated("missing Authorization header (expected: Bearer <API key>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization header must be: Bearer <API key>")
        token = token.strip()
        if auth.looks_like_jwt(token):
            if jwt_tenant is None:
                raise Unauthenticated(
                    "key-pair JWTs authenticate only GET /audit-logs; use an API key here"
                )
            return auth.check_jwt(token, self._key_pair_of(jwt_tenant, token))
        key_id = auth.key_id_of(token)
        key = (
            self._credential(("key", key_id), lambda: self.store.get_key(key_id))
            if key_id
            else None
        )
        return auth.check_token(token, key if isinstance(key, ApiKey) else None)

    def _key_pair_of(self, tenant: str, token: str) -> KeyPair | None:
        """The tenant's pair named by the JWT's kid; ids no pair can have never reach SQL."""
        kid = auth.jwt_key_id(token)
        if kid is None or not _TENANT_ID.match(tenant):
            return None
        pair = self._credential(
            ("key_pair", tenant, kid), lambda: self.store.get_key_pair(tenant, kid)
        )
        return pair if isinstance(pair, KeyPair) else None

    def _credential(
        self, ident: tuple[str, ...], load: Callable[[], ApiKey | KeyPair | None]
    ) -> ApiKey | KeyPair | None:
        cache = self._credentials
        if cache is None:
            return load()
        with self._credentials_lock:
            found = cache.get(ident)
        if found is None:
            found = load()
            if found is not None:
                with self._credentials_lock:
                    cache[ident] = found
        return found

    def _forget_credential(self, ident: tuple[str, ...]) -> None:
        if self._credentials is not None:
            with self._credentials_lock:
                self._credentials.pop(ident, None)

    # ---- events --------------------------------------------------------------------------

    def ingest(
        self,
        tenant: str,
        events: Sequence[EventIn],
        *,
        keep_canonical: bool = False,
        decoded: bool = False,
    ) -> list[tuple[Event, bool]]:
        """Validate and store events all-or-nothing; returns (event, created?) for each.
        `keep_canonical`: for a caller answering with the events in full (`Store.insert_events`).
        `decoded`: the events were decoded by msgspec (HTTP, `import`), which checked their
        types and lengths; events built in Python are checked here first."""
        if not events:
            raise InvalidInput("no events given")
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per batch")
        if not decoded:
            events = checked_events(events)
        batch = EventBatch(tenant, events, self._clock())
        return self.store.insert_events(tenant, batch, keep_canonical=keep_canonical)

    def after_bulk_load(self) -> None:
        """Refresh planner statistics, so reads right after a large import use the indexes
        (autovacuum would, later; it may also be switched off)."""
        self.store.analyze()

    def get_event(self, tenant: str, event_id: str) -> Event:
        # An id that could never have been stored is simply not found (and never reaches SQL).
        event = self.store.get_event(tenant, event_id) if _EVENT_ID.match(event_id) else None
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        return event

    def list_events(
        self,
        tenant: str,
        filters: EventFilter,
        limit: int,
        cursor: str | None,
        dialect: str,
    ) -> tuple[Page, str | None, str | None]:
        """One page newest first; returns it with the next and previous cursors (or None)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        check_filters(filters)
        scope = cursor_scope(tenant, dialect, filters)
        position, direction = (
            self._cursors.decode(cursor, scope) if cursor else (None, Direction.OLDER)
        )
        page = self._page(tenant, filters, limit, position, direction)
        next_token = self._cursors.encode(page.next, Direction.OLDER, scope) if page.next else None
        prev_token = (
            self._cursors.encode(page.previous, Direction.NEWER, scope) if page.previous else None
        )
        return page, next_token, prev_token

    def _page(
        self,
        tenant: str,
        filters: EventFilter,
        limit: int,
        position: Position | None,
        direction: Direction,
    ) -> Page:
        rows = self.store.list_events(tenant, filters, position, direction, limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        if direction is Direction.NEWER:
            rows.reverse()
            # Coming back from an older page: there is always a next page (where we came from).
            return Page(
                events=[view for _, view in rows],
                next=rows[-1][0] if rows else position,
                previous=rows[0][0] if more and rows else None,
            )
        return Page(
            events=[view for _, view in rows],
            next=rows[-1][0] if more else None,
            previous=rows[0][0] if position is not None and rows else None,
        )

    # ---- tamper evidence ----------------------------------------------------------------

    def origin(self, tenant: str) -> str:
        return f"{self.log_origin}/{tenant}"

    def checkpoint(self, tenant: str, size: int | None = None) -> Checkpoint:
        """The signed checkpoint at `size` (default: the current tree).

        The current tree's checkpoint is stored when first signed, and served again; so is
        any size stored before. Any other past size is signed afresh for each request and not
        stored: a reader choosing sizes must not grow the database (at most one row per size
        the tree ever had *now*, which writes bound). Every root is computed from the same
        append-only tree, so any two checkpoints this log signs are consistent.
        """
        head = self.store.ledger_head(tenant)
        current, current_root = head if head else (0, EMPTY_ROOT)
        if size is None:
            size = current
        if not 0 <= size <= current:
            raise InvalidInput(f"size must be between 0 and the tree size {current}")
        existing = self.store.get_checkpoint(tenant, size)
        if existing is not None:
            return existing
        if size == current:
            return self.store.save_checkpoint(self._sign(tenant, size, current_root))
        ranges = [(0, size)]
        [root] = hash_ranges(ranges, self.store.ledger_nodes(tenant, nodes_for(ranges)))
        return self._sign(tenant, size, root)

    def _sign(self, tenant: str, size: int, root: bytes) -> Checkpoint:
        now = self._clock()
        note = self.signer.sign_checkpoint(self.origin(tenant), size, root, now)
        return Checkpoint(tenant=tenant, size=size, root=root, created_at=now, note=note)

    def sign_due_checkpoints(self) -> int:
        """Sign the current tree of every tenant whose log grew; returns how many."""
        tenants = self.store.tenants_behind_checkpoint()
        for tenant in tenants:
            self.checkpoint(tenant)
        return len(tenants)

    def inclusion_proof(
        self, tenant: str, event_id: str, size: int | None = None
    ) -> tuple[Event, Checkpoint, list[bytes]]:
        """Proof that the event is leaf `log_index` of the tree in the returned checkpoint."""
        event = self.get_event(tenant, event_id)
        if event.log_index is None or event.leaf_hash is None:
            raise NotFound(f"event {event_id!r} is not in the log")
        checkpoint = self.checkpoint(tenant, size)
        if event.log_index >= checkpoint.size:
            raise InvalidInput(
                f"event {event_id!r} has log index {event.log_index}, not covered by a tree of "
                f"size {checkpoint.size}; ask for a later checkpoint"
            )
        ranges = inclusion_ranges(event.log_index, checkpoint.size)
        nodes = self.store.ledger_nodes(tenant, nodes_for(ranges))
        return event, checkpoint, hash_ranges(ranges, nodes)

    def consistency_proof(
        self, tenant: str, first: int, second: int
    ) -> tuple[Checkpoint, Checkpoint, list[bytes]]:
        """Proof that the tree of size `second` extends the tree of size `first` unchanged."""
        if first > second:
            raise InvalidInput("from must not be larger than to")
        older, newer = self.checkpoint(tenant, first), self.checkpoint(tenant, second)
        ranges = consistency_ranges(first, second)
        nodes = self.store.ledger_nodes(tenant, nodes_for(ranges))
        return older, newer, hash_ranges(ranges, nodes)

    def export(self, tenant: str, filters: EventFilter, fmt: str = "jsonl") -> Iterator[bytes]:
        """Every matching event, oldest first, as JSONL or CSV chunks in constant memory."""
        check_filters(filters)
        if fmt == "jsonl":
            return jsonl_chunks(self.store.iter_event_json(tenant, filters))
        if fmt == "csv":
            return csv_chunks(self.store.iter_events(tenant, filters))
        raise InvalidInput(f"format must be one of {', '.join(EXPORT_FORMATS)}")
