"""Tamper-evidence routes, checked with the vendorable verifier as a customer would."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.helpers import assert_error
from tests.factories import event_payload
from trailkeeper import verifier
from trailkeeper.service import AuditService

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def acme(client: TestClient[Any], key_for: Headers) -> dict[str, str]:
    headers = key_for("acme")
    events = [event_payload(n) for n in range(37)]
    response = client.post("/v1/events/batch", json={"events": events}, headers=headers)
    assert response.status_code == 201
    return headers


def vkey(client: TestClient[Any]) -> str:
    key = client.get("/v1/ledger/public-key").json()
    assert key["algorithm"] == "ed25519"
    assert key["vkey"].startswith(f"{key['name']}+{key['key_id']}+")
    return str(key["vkey"])


def test_checkpoint_inclusion_and_consistency(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    key = vkey(client)
    body = client.get("/v1/ledger/checkpoint", headers=acme).json()
    checkpoint = verifier.parse_checkpoint(body["note"], key)
    assert (checkpoint.size, body["size"]) == (37, 37)
    assert base64.b64decode(body["root"]) == checkpoint.root

    for n in (0, 17, 36):
        event = client.get(f"/v1/events/evt-{n:05d}", headers=acme).json()
        proof = client.get(f"/v1/events/evt-{n:05d}/proof", headers=acme).json()
        assert proof["log_index"] == event["log_index"]
        assert proof["leaf_hash"] == event["leaf_hash"]
        verifier.verify_inclusion(
            event["log_index"],
            proof["tree_size"],
            verifier.event_leaf_hash(event),
            [base64.b64decode(h) for h in proof["proof"]],
            checkpoint.root,
        )

    old = client.get("/v1/ledger/checkpoint?size=5", headers=acme).json()
    assert verifier.parse_checkpoint(old["note"], key).size == 5
    more = [event_payload(n) for n in range(37, 50)]
    client.post("/v1/events/batch", json={"events": more}, headers=acme)
    consistency = client.get("/v1/ledger/consistency?from=5&to=50", headers=acme).json()
    assert (consistency["from"], consistency["to"]) == (5, 50)
    newer = verifier.parse_checkpoint(consistency["to_checkpoint"], key)
    verifier.verify_consistency(
        5,
        50,
        verifier.parse_checkpoint(old["note"], key).root,
        newer.root,
        [base64.b64decode(h) for h in consistency["proof"]],
    )


def test_export_verifies_against_the_checkpoint(
    client: TestClient[Any], acme: dict[str, str]
) -> None:
    note = client.get("/v1/ledger/checkpoint", headers=acme).json()["note"]
    checkpoint = verifier.parse_checkpoint(note, vkey(client))
    export = client.get("/v1/export", headers=acme).text.splitlines()
    report = verifier.verify_export(export, checkpoint)
    assert report.ok, report.message


@pytest.mark.parametrize(
    "query",
    [
        "/v1/ledger/checkpoint?size=-1",
        "/v1/ledger/checkpoint?size=38",
        "/v1/ledger/checkpoint?size=x",
        "/v1/ledger/checkpoint?sise=3",
        "/v1/ledger/consistency?from=5",
        "/v1/ledger/consistency?from=9&to=5",
        "/v1/ledger/consistency?from=0&to=99",
        "/v1/events/evt-00001/proof?size=1",
        "/v1/events/evt-00001/proof?size=abc",
    ],
)
def test_bad_ledger_queries(client: TestClient[Any], acme: dict[str, str], query: str) -> None:
    assert_error(client.get(query, headers=acme), 400)


def test_empty_log_has_a_checkpoint(client: TestClient[Any], key_for: Headers) -> None:
    body = client.get("/v1/ledger/checkpoint", headers=key_for("globex")).json()
    checkpoint = verifier.parse_checkpoint(body["note"], vkey(client))
    assert checkpoint.size == 0
    assert checkpoint.root == verifier.EMPTY_ROOT


def test_past_sizes_are_signed_on_request_and_never_stored(
    client: TestClient[Any], acme: dict[str, str], service: AuditService
) -> None:
    """A reader choosing sizes must not grow the database (issue 23, item 5)."""
    key = vkey(client)
    latest = client.get("/v1/ledger/checkpoint", headers=acme).json()
    assert latest["size"] == 37
    roots = {}
    for size in range(37):
        body = client.get(f"/v1/ledger/checkpoint?size={size}", headers=acme).json()
        assert verifier.parse_checkpoint(body["note"], key).size == size
        roots[size] = body["root"]
        proof = f"/v1/ledger/consistency?from={size}&to=37"
        assert client.get(proof, headers=acme).status_code == 200
        inclusion = f"/v1/events/evt-00000/proof?size={max(size, 1)}"
        assert client.get(inclusion, headers=acme).status_code == 200
    assert [n for n in range(38) if service.store.get_checkpoint("acme", n)] == [37]
    # signed afresh, each answer is the same tree: the same root as before
    again = client.get("/v1/ledger/checkpoint?size=5", headers=acme).json()
    assert again["root"] == roots[5]
    # the current tree's checkpoint is the one stored, and served again as it was
    assert client.get("/v1/ledger/checkpoint?size=37", headers=acme).json() == latest
