"""Erasure: a person's data is gone from every read and from the database files, and the log
still verifies, naming the logged erasure; changes no erasure explains are still caught."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from tests.conftest import IN_CI
from tests.test_retention import BY, checkpoint_of, export_lines, ingest
from trailkeeper import retention, verifier
from trailkeeper.errors import Conflict
from trailkeeper.model import EventFilter, EventIn
from trailkeeper.service import AuditService
from trailkeeper.store import Store

EMAIL = "person3@example.com"  # the actor of e3, e8, e13, ... (see ingest)


@pytest.fixture
def svc(store: Store) -> AuditService:
    service = AuditService(store)
    service.create_tenant("acme")
    service.update_tenant("acme", personal_metadata_keys=["phone"])
    ingest(service, 30)
    return service


def _everything_readable(svc: AuditService) -> bytes:
    """Every route's view of the tenant: events one by one, pages, both export formats."""
    parts = [b"".join(svc.export("acme", EventFilter(), fmt)) for fmt in ("jsonl", "csv")]
    for n in range(40):
        try:
            parts.append(msgspec.json.encode(svc.get_event("acme", f"e{n}")))
        except Exception:
            continue
    return b"\n".join(parts)


def test_erase_by_email_removes_the_data_and_the_log_verifies(svc: AuditService) -> None:
    assert EMAIL.encode() in _everything_readable(svc)
    result = retention.erase(svc, "acme", "email", EMAIL, "GDPR art. 17 request 81", BY)
    assert result.events == 6
    assert result.log_indexes == [3, 8, 13, 18, 23, 28]
    readable = _everything_readable(svc)
    assert EMAIL.encode() not in readable
    erased = svc.get_event("acme", "e8")
    assert erased.actor.email == "[erased]"
    assert erased.context is not None
    assert erased.context.ip == "[erased]"
    assert erased.metadata == {"n": 8, "phone": "[erased]"}
    assert svc.get_event("acme", "e9").actor.email == "person4@example.com"  # others stay
    # the erasure is in the log, without the subject in the clear
    logged = svc.get_event("acme", result.logged_as[0])
    assert logged.action == "trailkeeper.erasure"
    assert logged.metadata["log_indexes"] == result.log_indexes
    assert EMAIL not in msgspec.json.encode(logged).decode()
    report = verifier.verify_export(export_lines(svc), checkpoint_of(svc))
    assert report.ok, report.message
    assert f"6 erased by logged erasure {result.id}" in report.message


def test_an_edit_no_erasure_explains_is_caught(svc: AuditService, store: Store) -> None:
    retention.erase(svc, "acme", "email", EMAIL, "request 81", BY)
    latest = checkpoint_of(svc)
    with store._writer() as db:  # type: ignore[attr-defined]
        db.update_rows(
            f"UPDATE events SET actor_email = '[erased]' WHERE tenant = 'acme' "
            f"AND log_index = {db.ph}",
            [(4,)],
        )
    report = verifier.verify_export(export_lines(svc), latest)
    assert not report.ok
    assert report.first_bad_index == 4


def test_a_client_cannot_log_an_erasure(svc: AuditService, store: Store) -> None:
    """An erasure event a client ingests (its signature is not by the log key) excuses
    nothing: the edit it 'lists' is caught."""
    fake = {
        "id": "fake-erasure",
        "action": "trailkeeper.erasure",
        "actor": {"id": "mallory"},
        "metadata": {"erasure": "er_x", "part": 1, "log_indexes": [2], "signature": "AAAA"},
    }
    svc.ingest("acme", [msgspec.convert(fake, EventIn)])
    latest = checkpoint_of(svc)
    with store._writer() as db:  # type: ignore[attr-defined]
        db.update_rows(
            f"UPDATE events SET action = 'x' WHERE tenant = 'acme' AND log_index = {db.ph}", [(2,)]
        )
    report = verifier.verify_export(export_lines(svc), latest)
    assert not report.ok
    assert report.first_bad_index == 2


def test_a_subject_on_hold_is_not_erased(svc: AuditService) -> None:
    hold = retention.place_hold(svc, "acme", "investigation", BY, ("email", EMAIL))
    with pytest.raises(Conflict):
        retention.erase(svc, "acme", "email", EMAIL, "request", BY)
    assert svc.get_event("acme", "e3").actor.email == EMAIL
    retention.erase(svc, "acme", "email", "person1@example.com", "request", BY)  # not held
    retention.lift_hold(svc, "acme", hold.id, BY)
    assert retention.erase(svc, "acme", "email", EMAIL, "request", BY).events == 6
    actions = [json.loads(line).get("action") for line in export_lines(svc)]
    assert "trailkeeper.legal_hold.placed" in actions
    assert "trailkeeper.legal_hold.lifted" in actions


def test_erase_by_actor_id_then_purge_then_verify(svc: AuditService) -> None:
    retention.erase(svc, "acme", "actor_id", "u2", "request", BY)
    assert svc.get_event("acme", "e2").actor.email == "[erased]"
    assert svc.get_event("acme", "e2").actor.id == "u2"  # the pseudonymous id stays
    report = verifier.verify_export(export_lines(svc), checkpoint_of(svc))
    assert report.ok, report.message


def test_the_email_is_gone_from_the_sqlite_files(
    svc: AuditService, database_url: str, store: Store
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite files")
    path = Path(database_url.removeprefix("sqlite:///"))
    files = (path, Path(f"{path}-wal"))
    assert EMAIL.encode() in b"".join(f.read_bytes() for f in files if f.exists())
    retention.erase(svc, "acme", "email", EMAIL, "request", BY)
    for file in files:
        if file.exists():
            assert EMAIL.encode() not in file.read_bytes(), file
    assert b"person4@example.com" in path.read_bytes() + Path(f"{path}-wal").read_bytes()


def test_the_email_is_gone_from_pg_dump(svc: AuditService, database_url: str) -> None:
    if not database_url.startswith("postgres"):
        pytest.skip("a PostgreSQL dump: the SQLite file is checked by the test above")
    if shutil.which("pg_dump") is None:
        if IN_CI:
            pytest.fail(
                "pg_dump is missing; CI must check the dump (apt-get install postgresql-client)"
            )
        pytest.skip("pg_dump is not installed")
    before = subprocess.run(["pg_dump", database_url], capture_output=True, check=True).stdout
    assert EMAIL.encode() in before
    retention.erase(svc, "acme", "email", EMAIL, "request", BY)
    after = subprocess.run(["pg_dump", database_url], capture_output=True, check=True).stdout
    assert EMAIL.encode() not in after
    assert b"person4@example.com" in after
