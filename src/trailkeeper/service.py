"""Use-cases: ingest, read, page, export, and the key/tenant administration behind them.

This is the only caller of `Store`. HTTP dialects and the CLI translate their inputs into these
calls and the results back into their own shapes; the rules (paging, tenant checks, and,
through validation.py, checks beyond types) live here once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import hmac
import ipaddress
import itertools
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from cachetools import TTLCache

from trailkeeper import auth
from trailkeeper.cursor import CursorCodec, cursor_scope
from trailkeeper.errors import (
    Conflict,
    InvalidCursor,
    InvalidInput,
    NotFound,
    TrailkeeperError,
    Unauthenticated,
)
from trailkeeper.formats import EXPORT_FORMATS, csv_chunks, jsonl_chunks
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
    bound_ms,
    format_ts,
    is_event_id,
    utc_now_ms,
)
from trailkeeper.query import Query, parse_query
from trailkeeper.store import Store
from trailkeeper.validation import check_filters, validate
from trailkeeper.verifier import EMPTY_ROOT

_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# How stale `last_used_at` may be: each key's use is written at most this often, and the uses
# of all keys in one transaction, so authenticating is never a write per request.
LAST_USED_INTERVAL = timedelta(minutes=1)


class AdminActor(msgspec.Struct, frozen=True):
    """Who performs an administrative action, and from where: what the operator log records.
    `kind` is `api_key` (`id` the admin key's id) or `cli` (`id` user@host)."""

    kind: str
    id: str
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def cli(cls, command: str = "cli") -> AdminActor:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no login name (a container's bare uid)
            user = "unknown"
        return cls(kind="cli", id=f"{user}@{socket.gethostname()}"[:256], user_agent=command)

    @property
    def source(self) -> str:
        return "admin-api" if self.kind == "api_key" else "cli"

    def context(self) -> dict[str, str]:
        """The request's IP (only a valid address) and user agent (cut to what events hold)."""
        found: dict[str, str] = {}
        if self.ip:
            with contextlib.suppress(ValueError):
                found["ip"] = str(ipaddress.ip_address(self.ip))
        if self.user_agent:
            found["user_agent"] = self.user_agent.replace("\x00", "")[:1024]
        return found


class UsageRecorder:
    """When each key was last used, held in memory and handed out for writing at most once
    per `interval` (all keys at once). Thread-safe."""

    def __init__(self, interval: timedelta) -> None:
        self._interval = interval
        self._pending: dict[str, datetime] = {}
        self._written: datetime | None = None
        self._lock = threading.Lock()

    def used(self, key_id: str, at: datetime) -> dict[str, datetime]:
        """Note a use; returns the uses to write now (usually none)."""
        with self._lock:
            if self._pending.get(key_id, at) <= at:
                self._pending[key_id] = at
            if self._written is not None and at - self._written < self._interval:
                return {}
            self._written = at
            due, self._pending = self._pending, {}
            return due

    def put_back(self, due: dict[str, datetime]) -> None:
        with self._lock:
            for key_id, at in due.items():
                if self._pending.get(key_id, at) <= at:
                    self._pending[key_id] = at

    def take_all(self) -> dict[str, datetime]:
        with self._lock:
            due, self._pending = self._pending, {}
            return due

    def overlay(self, key: ApiKey) -> ApiKey:
        """The key with a use not yet written as its `last_used_at`."""
        with self._lock:
            pending = self._pending.get(key.id)
        if pending is None or (key.last_used_at is not None and key.last_used_at >= pending):
            return key
        return msgspec.structs.replace(key, last_used_at=pending)


def _display_name(name: str) -> str:
    if not 1 <= len(name) <= 200 or _CONTROL.search(name):
        raise InvalidInput(
            "tenant name must be 1-200 characters, without control characters",
            details=[{"field": "name", "message": "1-200 characters, no control characters"}],
        )
    return name


def _encode_tenant_cursor(last_id: str) -> str:
    """Tenants page by id; the cursor holds the last id seen (nothing an admin cannot list)."""
    return base64.urlsafe_b64encode(last_id.encode()).rstrip(b"=").decode()


def _decode_tenant_cursor(cursor: str) -> str:
    try:
        after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise InvalidCursor("cursor is malformed") from None
    if not (_TENANT_ID.match(after) or after == auth.SYSTEM_TENANT) or len(cursor) > 128:
        raise InvalidCursor("cursor is malformed")
    return after


class Page(msgspec.Struct, frozen=True):
    """One page of events, newest first, with where the neighbouring pages start (None: no
    such page)."""

    events: list[Event]
    next: Position | None
    previous: Position | None


def search_query(filters: EventFilter, q: str = "") -> Query:
    """What a listing or export selects: the filter parameters (shorthand for qualifiers)
    AND the search text `q` (docs/search.md). InvalidInput names a bad parameter, or the
    position and token of a syntax error."""
    check_filters(filters)
    return Query.from_filters(filters).and_(parse_query(q))


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
        self._usage = UsageRecorder(LAST_USED_INTERVAL)
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
        with contextlib.suppress(TrailkeeperError):
            self.flush_key_usage()
        self.store.close()

    def database_stats(self) -> dict[str, int]:
        """Connection-pool and write-queue figures, for metrics."""
        return self.store.stats()

    def check_health(self) -> None:
        self.store.ping()

    # ---- tenants and keys ----------------------------------------------------------------

    def create_tenant(
        self, tenant_id: str, name: str | None = None, *, by: AdminActor | None = None
    ) -> Tenant:
        """A new, active tenant. Ids starting with `_` are reserved (the operator log)."""
        if tenant_id.startswith("_"):
            raise InvalidInput(
                f"tenant ids starting with '_' are reserved ({auth.SYSTEM_TENANT} is the "
                "operator log)",
                details=[{"field": "id", "message": "reserved"}],
            )
        if not _TENANT_ID.match(tenant_id):
            raise InvalidInput(
                "tenant id must be 1-64 characters: lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit",
                details=[{"field": "id", "message": "1-64 of a-z 0-9 - _, not starting with _"}],
            )
        tenant = Tenant(
            id=tenant_id, name=_display_name(name or tenant_id), created_at=self._clock()
        )
        self.store.create_tenant(tenant)
        self._record(by, "tenant.created", "tenant", tenant.id, tenant.name, {})
        return tenant

    def list_tenants(self, after: str | None = None, limit: int | None = None) -> list[Tenant]:
        return self.store.list_tenants(after, limit)

    def tenants_page(self, limit: int, cursor: str | None) -> tuple[list[Tenant], str | None]:
        """One page of tenants by id, and the cursor of the next page (None on the last)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        after = _decode_tenant_cursor(cursor) if cursor else None
        rows = self.store.list_tenants(after, limit + 1)
        page = rows[:limit]
        return page, _encode_tenant_cursor(page[-1].id) if len(rows) > limit else None

    def require_tenant(self, tenant_id: str) -> Tenant:
        tenant = self.store.get_tenant(tenant_id) if len(tenant_id) <= 64 else None
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return tenant

    def update_tenant(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        active: bool | None = None,
        retention_days: int | msgspec.UnsetType | None = msgspec.UNSET,
        personal_metadata_keys: Sequence[str] | None = None,
        by: AdminActor | None = None,
    ) -> Tenant:
        """Rename, deactivate or reactivate; set the retention policy (docs/retention.md).
        Deactivating refuses every credential of the tenant at once (in this process; other
        workers within the credential cache TTL) and keeps its data; reactivating lets its
        unrevoked, unexpired keys in again."""
        tenant = self.require_tenant(tenant_id)
        if tenant.id == auth.SYSTEM_TENANT:
            raise InvalidInput(f"the operator tenant {auth.SYSTEM_TENANT} cannot be changed")
        changes: list[tuple[str, dict[str, Any]]] = []
        if name is not None and _display_name(name) != tenant.name:
            changes.append(("tenant.renamed", {"from": tenant.name, "to": name}))
            tenant = msgspec.structs.replace(tenant, name=name)
        if active is not None and active != tenant.active:
            at = None if active else self._clock()
            changes.append(("tenant.reactivated" if active else "tenant.deactivated", {}))
            tenant = msgspec.structs.replace(tenant, deactivated_at=at)
        if retention_days is not msgspec.UNSET and retention_days != tenant.retention_days:
            if retention_days is not None and retention_days < 1:
                raise InvalidInput("retention_days must be at least 1 (or none: keep for ever)")
            metadata = {"from": tenant.retention_days, "to": retention_days}
            changes.append(("tenant.retention_changed", metadata))
            tenant = msgspec.structs.replace(tenant, retention_days=retention_days)
        keys = (
            None if personal_metadata_keys is None else tuple(dict.fromkeys(personal_metadata_keys))
        )
        if keys is not None and keys != tenant.personal_metadata_keys:
            changes.append(("tenant.personal_metadata_keys_changed", {"keys": list(keys)}))
            tenant = msgspec.structs.replace(tenant, personal_metadata_keys=keys)
        if not changes:
            return tenant
        if not self.store.update_tenant(tenant):
            raise NotFound(f"no tenant {tenant_id!r}")
        self._forget_tenant_credentials(tenant.id)
        for action, metadata in changes:
            self._record(by, action, "tenant", tenant.id, tenant.name, metadata)
        return tenant

    def create_key(
        self,
        tenant_id: str,
        name: str,
        scopes: Iterable[str] = auth.DEFAULT_SCOPES,
        *,
        expires_at: datetime | None = None,
        by: AdminActor | None = None,
    ) -> tuple[ApiKey, str]:
        """Returns the stored key and its token; the token is never retrievable again.
        Keys of the operator tenant (`_system`, made on first use) hold `admin`."""
        if tenant_id == auth.SYSTEM_TENANT:
            self._ensure_operator_tenant()
        self.require_tenant(tenant_id)
        if not 1 <= len(name) <= 100 or _CONTROL.search(name):
            raise InvalidInput(
                "key name must be 1-100 characters, without control characters",
                details=[{"field": "name", "message": "1-100 characters, no control characters"}],
            )
        now = self._clock()
        expires_at = None if expires_at is None else bound_ms(expires_at)
        if expires_at is not None and expires_at <= now:
            raise InvalidInput(
                "expires_at must be in the future",
                details=[{"field": "expires_at", "message": "must be in the future"}],
            )
        key, token = auth.new_key(tenant_id, name, scopes, created_at=now, expires_at=expires_at)
        self.store.create_key(key)
        metadata: dict[str, Any] = {"tenant": tenant_id, "scopes": list(key.scopes)}
        if expires_at is not None:
            metadata["expires_at"] = format_ts(expires_at)
        self._record(by, "api_key.created", "api_key", key.id, key.name, metadata)
        return key, token

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        """Keys (never secrets), with uses not yet written counted in `last_used_at`."""
        return [self._usage.overlay(key) for key in self.store.list_keys(tenant_id)]

    def revoke_key(
        self, key_id: str, *, tenant_id: str | None = None, by: AdminActor | None = None
    ) -> None:
        """Revoke at once (this process; others within the credential cache TTL). With
        `tenant_id` (the admin API), a key of another tenant is not found. Revoking a revoked
        key again is harmless and not recorded again."""
        key = self.store.get_key(key_id) if len(key_id) <= 64 else None
        if key is None or (tenant_id is not None and key.tenant != tenant_id):
            raise NotFound(f"no API key {key_id!r}")
        self._forget_credential(("key", key_id))
        if self.store.revoke_key(key_id, self._clock()):
            metadata = {"tenant": key.tenant}
            self._record(by, "api_key.revoked", "api_key", key.id, key.name, metadata)

    def _ensure_operator_tenant(self) -> None:
        if self.store.get_tenant(auth.SYSTEM_TENANT) is None:
            operator = Tenant(id=auth.SYSTEM_TENANT, name="Operator log", created_at=self._clock())
            with contextlib.suppress(Conflict):  # another process made it meanwhile
                self.store.create_tenant(operator)

    def _record(
        self,
        by: AdminActor | None,
        action: str,
        target_type: str,
        target_id: str,
        target_name: str,
        metadata: dict[str, Any],
    ) -> None:
        """Append an administrative action to the operator log (tenant `_system`) through the
        normal ingest path, so it is in that tenant's Merkle log. `by` None: setup done by
        code, not by an operator (tests), which is not recorded."""
        if by is None:
            return
        self._ensure_operator_tenant()
        document = {
            "action": action,
            "type": "admin",
            "actor": {"id": by.id, "type": by.kind},
            "target": {"type": target_type, "id": target_id, "name": target_name},
            "source": by.source,
            "context": by.context(),
            "metadata": metadata,
        }
        self.ingest(auth.SYSTEM_TENANT, [msgspec.convert(document, EventIn)])

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

    def bootstrap(self, *, by: AdminActor | None = None) -> str | None:
        """On an empty database (the operator tenant aside), create tenant `default` and a
        key; returns its token once."""
        if any(t.id != auth.SYSTEM_TENANT for t in self.store.list_tenants()):
            return None
        self.create_tenant("default", "Default tenant", by=by)
        _, token = self.create_key("default", "bootstrap", by=by)
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
        now = self._clock()
        who = auth.check_token(token, key if isinstance(key, ApiKey) else None, now)
        self._note_use(who.key_id, now)
        return who

    def _note_use(self, key_id: str, now: datetime) -> None:
        """Remember the use; write the uses of every key at most once per interval, in one
        transaction. A failed write is retried with the next batch; it never fails the
        request that happened to carry it."""
        due = self._usage.used(key_id, now)
        if due:
            try:
                self.store.touch_keys(due)
            except TrailkeeperError:
                self._usage.put_back(due)

    def flush_key_usage(self) -> None:
        """Write every use not written yet (at shutdown)."""
        due = self._usage.take_all()
        if due:
            self.store.touch_keys(due)

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

    def _forget_tenant_credentials(self, tenant: str) -> None:
        """Drop the tenant's cached keys and pairs: they carry its active flag."""
        if self._credentials is not None:
            with self._credentials_lock:
                for ident, found in list(self._credentials.items()):
                    if found.tenant == tenant:
                        self._credentials.pop(ident, None)

    # ---- events --------------------------------------------------------------------------

    def ingest(self, tenant: str, events: Sequence[EventIn]) -> list[tuple[Event, bool]]:
        """Validate, then store events all-or-nothing; returns (event, created?) for each."""
        if not events:
            raise InvalidInput("no events given")
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per batch")
        return self.store.insert_events(tenant, validate(tenant, events, self._clock()))

    def after_bulk_load(self) -> None:
        """Refresh planner statistics, so reads right after a large import use the indexes
        (autovacuum would, later; it may also be switched off)."""
        self.store.analyze()

    def get_event(self, tenant: str, event_id: str) -> Event:
        # An id that could never have been stored is simply not found (and never reaches SQL).
        event = self.store.get_event(tenant, event_id) if is_event_id(event_id) else None
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        return event

    def list_events(
        self,
        tenant: str,
        selection: Query | EventFilter,
        limit: int,
        cursor: str | None,
        dialect: str,
    ) -> tuple[Page, str | None, str | None]:
        """One page newest first; returns it with the next and previous cursors (or None),
        which are bound to the query."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        filters = search_query(selection) if isinstance(selection, EventFilter) else selection
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
        filters: Query,
        limit: int,
        position: Position | None,
        direction: Direction,
    ) -> Page:
        events = self.store.list_events(tenant, filters, position, direction, limit + 1)
        more, events = len(events) > limit, events[:limit]
        first = Position.of(events[0]) if events else None
        last = Position.of(events[-1]) if events else None
        if direction is Direction.NEWER:
            events.reverse()
            first, last = last, first
            # Coming back from an older page: there is always a next page (where we came from).
            return Page(events=events, next=last or position, previous=first if more else None)
        return Page(
            events=events,
            next=last if more else None,
            previous=first if position is not None else None,
        )

    # ---- tamper evidence ----------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def origin(self, tenant: str) -> str:
        return f"{self.log_origin}/{tenant}"

    def checkpoint(self, tenant: str, size: int | None = None, name: str = "size") -> Checkpoint:
        """The signed checkpoint at `size` (default: the current tree); an out-of-range size
        is a 400 naming the query parameter `name`.

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
            message = f"must be between 0 and the tree size {current}"
            raise InvalidInput(
                f"{name} {message}", details=[{"field": name, "message": message, "in": "query"}]
            )
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
            raise InvalidInput(
                "from must not be larger than to",
                details=[{"field": "from", "message": "must not be larger than to", "in": "query"}],
            )
        older = self.checkpoint(tenant, first, name="from")
        newer = self.checkpoint(tenant, second, name="to")
        ranges = consistency_ranges(first, second)
        nodes = self.store.ledger_nodes(tenant, nodes_for(ranges))
        return older, newer, hash_ranges(ranges, nodes)

    def _export_header(self, tenant: str, filters: Query) -> list[bytes]:
        """The first line of a whole export of a log whose first events were purged: where
        it starts and the frontier hashes a verifier needs (docs/retention.md)."""
        if filters.clauses:
            return []
        first, frontier = self.store.frontier(tenant)
        if not first:
            return []
        header = {
            "trailkeeper_export": {
                "tenant": tenant,
                "first_index": first,
                "frontier": [base64.b64encode(h).decode() for h in frontier],
            }
        }
        return [msgspec.json.encode(header) + b"\n"]

    def export(
        self, tenant: str, selection: Query | EventFilter, fmt: str = "jsonl"
    ) -> Iterator[bytes]:
        """Every matching event, oldest first, as JSONL or CSV chunks in constant memory."""
        filters = search_query(selection) if isinstance(selection, EventFilter) else selection
        if fmt == "jsonl":
            chunks = jsonl_chunks(self.store.iter_event_json(tenant, filters))
            return itertools.chain(self._export_header(tenant, filters), chunks)
        if fmt == "csv":
            return csv_chunks(self.store.iter_events(tenant, filters))
        raise InvalidInput(f"format must be one of {', '.join(EXPORT_FORMATS)}")
