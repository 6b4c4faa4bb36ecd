"""`serve` keeps looked-up credentials for a few seconds; revocation must still bite."""

from __future__ import annotations

import time
from typing import Any

import pytest
from gr4vy import auth as gr4vy_auth

from trailkeeper.errors import Unauthenticated
from trailkeeper.model import ApiKey, KeyPair
from trailkeeper.service import AuditService
from trailkeeper.store import Store

TTL = 0.5


class CountingStore:
    """The real store, counting credential reads (what the cache saves)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reads = 0

    def get_key(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return self._store.get_key(key_id)

    def get_key_pair(self, tenant: str, key_id: str) -> KeyPair | None:
        self.reads += 1
        return self._store.get_key_pair(tenant, key_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def cached_service(store: Store, ttl: float = TTL) -> tuple[AuditService, CountingStore]:
    counting = CountingStore(store)
    service = AuditService(counting, credential_cache_seconds=ttl)  # type: ignore[arg-type]
    service.create_tenant("acme")
    return service, counting


def test_a_key_is_read_once_per_ttl(store: Store) -> None:
    service, counting = cached_service(store)
    _, token = service.create_key("acme", "k")
    for _ in range(5):
        assert service.authenticate(f"Bearer {token}").tenant == "acme"
    assert counting.reads == 1


def test_without_a_ttl_every_request_reads_the_key(store: Store) -> None:
    service, counting = cached_service(store, ttl=0)
    _, token = service.create_key("acme", "k")
    for _ in range(3):
        service.authenticate(f"Bearer {token}")
    assert counting.reads == 3


def test_revoking_through_the_service_applies_at_once(store: Store) -> None:
    service, _ = cached_service(store, ttl=60)
    key, token = service.create_key("acme", "k")
    service.authenticate(f"Bearer {token}")
    service.revoke_key(key.id)
    with pytest.raises(Unauthenticated):
        service.authenticate(f"Bearer {token}")


def test_revocation_elsewhere_applies_within_the_ttl(store: Store) -> None:
    service, _ = cached_service(store)
    other_process = AuditService(store)
    key, token = service.create_key("acme", "k")
    service.authenticate(f"Bearer {token}")
    other_process.revoke_key(key.id)
    service.authenticate(f"Bearer {token}")  # still cached: the documented window
    time.sleep(TTL + 0.1)
    with pytest.raises(Unauthenticated):
        service.authenticate(f"Bearer {token}")


def test_a_wrong_secret_is_refused_even_when_the_key_is_cached(store: Store) -> None:
    service, _ = cached_service(store, ttl=60)
    _, token = service.create_key("acme", "k")
    service.authenticate(f"Bearer {token}")
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    with pytest.raises(Unauthenticated):
        service.authenticate(f"Bearer {forged}")


def test_unknown_keys_are_not_cached(store: Store) -> None:
    service, counting = cached_service(store, ttl=60)
    key, token = service.create_key("acme", "k")
    unknown = token.replace(key.id, "f" * len(key.id), 1)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            service.authenticate(f"Bearer {unknown}")
    assert counting.reads == 3


def test_revoking_a_key_pair_through_the_service_applies_at_once(store: Store) -> None:
    service, counting = cached_service(store, ttl=60)
    pair, private_pem = service.generate_key_pair("acme", "sdk")
    token = gr4vy_auth.get_token(private_pem, scopes=["*.read"])
    service.authenticate(f"Bearer {token}", jwt_tenant="acme")
    service.authenticate(f"Bearer {token}", jwt_tenant="acme")
    assert counting.reads == 1
    service.revoke_key_pair(pair.id)
    with pytest.raises(Unauthenticated):
        service.authenticate(f"Bearer {token}", jwt_tenant="acme")
