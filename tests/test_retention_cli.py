"""The CLI's retention commands: tenants retention, purge, erase, legal-holds; an export of
a purged log imports (its header line is skipped)."""

from __future__ import annotations

import json

from tests.test_cli import run
from trailkeeper.store import open_store


def _age(database_url: str, below: int) -> None:
    """Make the events before log index `below` ten days old."""
    store = open_store(database_url)
    try:
        with store._writer() as db:  # type: ignore[attr-defined]
            older = (
                "received_at - 864000000"
                if database_url.startswith("sqlite")
                else "received_at - interval '10 days'"
            )
            db.update_rows(
                f"UPDATE events SET received_at = {older} WHERE log_index < {db.ph}", [(below,)]
            )
    finally:
        store.close()


def test_retention_purge_erase_and_holds_from_the_cli(database_url: str) -> None:
    assert run(database_url, "tenants", "create", "acme")[0] == 0
    lines = "".join(
        json.dumps({"id": f"e{i}", "action": "a", "actor": {"id": "u", "email": f"p{i}@x.io"}})
        + "\n"
        for i in range(20)
    )
    assert run(database_url, "import", "--tenant", "acme", "--quiet", input=lines)[0] == 0
    _age(database_url, 12)
    code, out, _ = run(
        database_url, "tenants", "retention", "acme", "--days", "5", "--personal-key", "phone"
    )
    assert code == 0
    assert "events kept 5 days; personal metadata keys: phone" in out
    code, out, _ = run(database_url, "purge", "--dry-run")
    assert "acme: would purge 12 events" in out
    code, out, _ = run(database_url, "purge", "--tenant", "acme")
    assert code == 0
    assert "acme: purged 12 events; log starts at index 12" in out
    code, exported, _ = run(database_url, "export", "--tenant", "acme")
    assert json.loads(exported.splitlines()[0])["trailkeeper_export"]["first_index"] == 12
    assert run(database_url, "tenants", "create", "copy")[0] == 0
    code, _, err = run(database_url, "import", "--tenant", "copy", "--quiet", input=exported)
    assert code == 0, err
    assert "imported 8 new events" in err
    code, out, _ = run(
        database_url, "erase", "--tenant", "acme", "--email", "p15@x.io", "--reason", "asked"
    )
    assert code == 0
    assert "1 events erased" in out
    code, hold, _ = run(database_url, "legal-holds", "place", "--tenant", "acme", "--reason", "x")
    assert code == 0
    code, _, err = run(database_url, "purge", "--tenant", "acme")
    assert code == 1
    assert "legal hold" in err
    code, _, err = run(
        database_url, "erase", "--tenant", "acme", "--email", "p16@x.io", "--reason", "asked"
    )
    assert code == 1
    assert "legal hold" in err
    assert run(database_url, "legal-holds", "lift", "--tenant", "acme", hold.strip())[0] == 0
    code, _, err = run(database_url, "erase", "--tenant", "acme", "--reason", "r")
    assert code == 2
    assert "exactly one of" in err
