"""The CLI: keys, tenants, import (incl. trailkeeper's own export) and streaming export."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tests.conftest import PG_ADMIN_URL
from tests.factories import event_payload
from tests.helpers import secret_of
from trailkeeper.cli import main
from trailkeeper.errors import Unauthenticated


def run(database_url: str, *args: str, input: str | bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--database-url", database_url, *args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_tenants_and_keys(database_url: str) -> None:
    assert run(database_url, "tenants", "create", "acme", "--name", "Acme Inc")[0] == 0
    code, _, err = run(database_url, "tenants", "create", "acme")
    assert code == 1
    assert "already exists" in err
    code, _, err = run(database_url, "tenants", "create", "Bad Name")
    assert code == 1
    assert "tenant id" in err

    code, token, _ = run(
        database_url, "keys", "create", "--tenant", "acme", "--name", "ci", "--scope", "events.read"
    )
    assert code == 0
    assert token.startswith("tk_")
    key_id = token.split("_")[1]
    _, listing, _ = run(database_url, "keys", "list")
    assert key_id in listing
    assert "active" in listing
    assert "events.read" in listing
    assert secret_of(token) not in listing, "secrets are never listed"

    assert run(database_url, "keys", "revoke", key_id)[0] == 0
    assert "revoked" in run(database_url, "keys", "list", "--tenant", "acme")[1]
    code, _, err = run(database_url, "keys", "revoke", "0000000000000000")
    assert code == 1
    assert "no API key" in err
    code, _, err = run(database_url, "keys", "create", "--tenant", "nope", "--name", "x")
    assert code == 1
    assert "no tenant" in err


def test_import_export_round_trip(database_url: str, tmp_path: Path) -> None:
    run(database_url, "tenants", "create", "acme")
    run(database_url, "tenants", "create", "copy")
    source = tmp_path / "events.jsonl"
    events = [event_payload(n) for n in range(2500)]
    source.write_text("\n".join(json.dumps(e) for e in events) + "\n\n")

    code, _, err = run(database_url, "import", str(source), "--tenant", "acme", "--quiet")
    assert code == 0, err
    assert "imported 2500 new events, 0 already present" in err
    # importing again is harmless: ids make it idempotent
    assert (
        "0 new events, 2500 already present"
        in run(database_url, "import", str(source), "--tenant", "acme", "--quiet")[2]
    )

    code, exported, _ = run(database_url, "export", "--tenant", "acme")
    lines = exported.splitlines()
    assert len(lines) == 2500
    assert {json.loads(line)["id"] for line in lines} == {e["id"] for e in events}
    times = [json.loads(line)["occurred_at"] for line in lines]
    assert times == sorted(times), "export is oldest first"

    # an export can be imported elsewhere, from stdin
    code, _, err = run(database_url, "import", "-", "--tenant", "copy", input=exported)
    assert code == 0
    assert "imported 2500 new events" in err
    copied = run(database_url, "export", "--tenant", "copy")[1].splitlines()

    server_fields = ("tenant", "received_at", "log_index", "leaf_hash")

    def strip(line: str) -> dict[str, object]:
        return {k: v for k, v in json.loads(line).items() if k not in server_fields}

    assert sorted(map(strip, copied), key=lambda e: e["id"]) == sorted(
        map(strip, lines), key=lambda e: e["id"]
    )


def test_export_filters_and_csv(database_url: str, tmp_path: Path) -> None:
    run(database_url, "tenants", "create", "acme")
    events = [event_payload(n) for n in range(200)]
    run(
        database_url,
        "import",
        "--tenant",
        "acme",
        "--quiet",
        input="\n".join(json.dumps(e) for e in events),
    )
    out = tmp_path / "out.csv"
    code, _, _ = run(
        database_url,
        "export",
        "--tenant",
        "acme",
        "--format",
        "csv",
        "--action",
        "created",
        "--since",
        "2024-05-01T00:00:10Z",
        "-o",
        str(out),
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    expected = {
        e["id"]
        for e in events
        if e["action"] == "created" and e["occurred_at"] >= "2024-05-01T00:00:10"
    }
    assert {r["id"] for r in rows} == expected
    assert all(json.loads(r["metadata"])["tags"] == ["a", "b"] for r in rows)
    assert {r["outcome"] for r in rows} == {"success"}
    code, failures, _ = run(database_url, "export", "--tenant", "acme", "--outcome", "failure")
    assert code == 0
    assert failures == ""  # every imported event succeeded (the default)
    code, _, _ = run(database_url, "export", "--tenant", "acme", "--outcome", "maybe")
    assert code != 0


def _import_with_line_8(database_url: str, line_8: str, batch_size: int) -> tuple[int, str, int]:
    """Import 10 good events but line 8 into a new tenant: (exit code, stderr, events stored)."""
    run(database_url, "tenants", "create", "acme")
    lines = [json.dumps(event_payload(n)) for n in range(10)]
    lines[7] = line_8
    code, _, err = run(
        database_url,
        "import",
        "--tenant",
        "acme",
        "--batch-size",
        str(batch_size),
        "--quiet",
        input="\n".join(lines),
    )
    exported = run(database_url, "export", "--tenant", "acme")[1].splitlines()
    return code, err, len(exported)


def test_import_reports_the_bad_line_and_keeps_earlier_batches(
    database_url: str, tmp_path: Path
) -> None:
    code, err, stored = _import_with_line_8(database_url, '{"action": "x"}', 5)
    assert code == 1
    assert "line 8" in err
    assert "actor" in err
    assert stored == 5, "the first full batch was stored, the failing one was not"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"actor": {"id": "u", "email": "no-at-sign"}}, "actor.email"),
        ({"context": {"ip": "999.1.1.1"}}, "context.ip"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"metadata": {"n": 2**60}}, "metadata"),
    ],
)
@pytest.mark.parametrize("batch_size", [5, 1])
def test_import_names_the_line_of_an_event_that_fails_validation(
    database_url: str, bad: dict[str, object], field: str, batch_size: int
) -> None:
    """Rules checked after parsing (validation.normalize_event) name the file's line too, not
    the event's place in its batch."""
    line_8 = json.dumps({**event_payload(7), **bad})
    code, err, stored = _import_with_line_8(database_url, line_8, batch_size)
    assert code == 1
    assert f"line 8: {field} " in err, err
    assert stored == (5 if batch_size == 5 else 7)


def test_unknown_database_scheme_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = run("mysql://x", "tenants", "list")
    assert code == 1
    assert "sqlite:///" in err


def test_verify_offline(database_url: str, tmp_path: Path) -> None:
    from trailkeeper.config import load_settings
    from trailkeeper.service import AuditService
    from trailkeeper.store import open_store

    run(database_url, "tenants", "create", "acme")
    run(
        database_url,
        "import",
        "--tenant",
        "acme",
        "--quiet",
        input="\n".join(json.dumps(event_payload(n)) for n in range(40)),
    )
    service = AuditService(open_store(database_url), log_origin=load_settings({}).log_origin)
    try:
        (tmp_path / "checkpoint.txt").write_text(service.checkpoint("acme").note)
        (tmp_path / "key.txt").write_text(service.signer.vkey)
    finally:
        service.close()
    export = tmp_path / "export.jsonl"
    run(database_url, "export", "--tenant", "acme", "-o", str(export))
    args = [
        "verify",
        "--export",
        str(export),
        "--checkpoint",
        str(tmp_path / "checkpoint.txt"),
        "--key",
        f"@{tmp_path / 'key.txt'}",
    ]
    code, out, err = run(database_url, *args)
    assert code == 0, err
    assert "verified: 40 events match" in out

    lines = export.read_text().splitlines()
    edited = json.loads(lines[12])
    edited["actor"]["id"] = "someone-else"
    lines[12] = json.dumps(edited)
    export.write_text("\n".join(lines))
    code, _, err = run(database_url, *args)
    assert code == 1
    assert "NOT VERIFIED" in err
    assert edited["id"] in err

    code, _, err = run(
        database_url,
        "verify",
        "--export",
        str(export),
        "--checkpoint",
        str(tmp_path / "checkpoint.txt"),
        "--key",
        _vkey("other", bytes(32)),
    )
    assert code == 1
    assert "NOT VERIFIED" in err


def test_key_pairs(database_url: str, tmp_path: Path) -> None:
    from gr4vy import auth as gr4vy_auth

    from trailkeeper.auth import check_jwt, generate_private_key, public_pem

    run(database_url, "tenants", "create", "acme")
    code, private_pem, err = run(
        database_url, "key-pairs", "generate", "--tenant", "acme", "--name", "reports"
    )
    assert code == 0, err
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    public_key, _ = generate_private_key()
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(public_pem(public_key))
    code, added_id, _ = run(
        database_url,
        "key-pairs",
        "add",
        "--tenant",
        "acme",
        "--name",
        "mine",
        "--public-key",
        str(pem_file),
    )
    assert code == 0
    code, _, err = run(
        database_url,
        "key-pairs",
        "add",
        "--tenant",
        "acme",
        "--name",
        "again",
        "--public-key",
        str(pem_file),
    )
    assert code == 1
    assert "already registered" in err
    listing = run(database_url, "key-pairs", "list")[1]
    assert added_id.strip() in listing
    assert listing.count("active") == 2

    generated_id = next(line.split("\t")[0] for line in listing.splitlines() if "reports" in line)
    assert run(database_url, "key-pairs", "revoke", generated_id)[0] == 0
    # an id that starts with '-' (base64url) is an id, not an unknown option
    code, _, err = run(database_url, "key-pairs", "revoke", "-Zm9vYmFy")
    assert code != 0
    assert "no key pair '-Zm9vYmFy'" in err
    assert "revoked" in run(database_url, "key-pairs", "list", "--tenant", "acme")[1]
    from trailkeeper.store import open_store

    store = open_store(database_url)
    try:
        token = gr4vy_auth.get_token(private_pem, scopes=["audit-logs.read"])
        pair = store.get_key_pair("acme", generated_id)
        assert pair is not None
        with pytest.raises(Unauthenticated):
            check_jwt(token, pair)
    finally:
        store.close()


def test_import_refreshes_planner_statistics(clean_pg_url: str, tmp_path: Path) -> None:
    """After a bulk import, PostgreSQL must know the table's size, or it scans whole tenants
    instead of walking the keyset index (and autovacuum may be off, as on our CI)."""
    import psycopg

    pg_url = clean_pg_url
    run(pg_url, "tenants", "create", "acme")
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(event_payload(n)) for n in range(3000)) + "\n")
    code, _, err = run(pg_url, "import", str(source), "--tenant", "acme", "--quiet")
    assert code == 0, err
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL "
            "FROM pg_stat_user_tables WHERE relname = 'events'"
        ).fetchone()
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM events WHERE tenant = 'acme' "
                "ORDER BY occurred_at DESC, seq DESC LIMIT 101"
            ).fetchall()
        )
    assert row == (True,)
    assert "Index Scan Backward using events_by_time" in plan, plan


READ_ONLY_COMMANDS = [
    ["keys", "list"],
    ["keys", "revoke", "0123456789abcdef"],
    ["key-pairs", "list"],
    ["key-pairs", "revoke", "abc"],
    ["key-pairs", "generate", "--name", "x"],
    ["tenants", "list"],
    ["export"],
    ["export", "--format", "csv"],
    ["import", "-"],
    ["keys", "create", "--name", "x"],
]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_commands_that_need_data_do_not_create_a_database(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from the wrong directory, a command used to make an empty ./data/trailkeeper.db
    and answer from it (an empty key list, "no tenant"): now it names the file it looked for."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAILKEEPER_DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, command, input='{"action": "a", "actor": {"id": "u"}}\n')
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"no database at {tmp_path / 'data' / 'trailkeeper.db'}" in result.stderr
    assert not (tmp_path / "data").exists()

    elsewhere = tmp_path / "other" / "tk.db"
    code, _, err = run(f"sqlite:///{elsewhere}", *command)
    assert code == 1
    assert f"no database at {elsewhere}" in err
    assert not elsewhere.parent.exists()


def test_a_new_database_is_announced_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'tk.db'}"
    code, _, err = run(url, "tenants", "create", "acme")
    assert code == 0
    assert f"created a new database at {tmp_path / 'new' / 'tk.db'}" in err
    code, _, err = run(url, "tenants", "create", "beta")
    assert code == 0
    assert "new database" not in err
    # The two tenants, and the operator log that recorded their creation.
    listed = run(url, "tenants", "list")[1]
    assert [line.split("\t")[0] for line in listed.splitlines()[1:]] == ["_system", "acme", "beta"]


@pytest.mark.parametrize(
    "given",
    [
        "tk_0123456789abcdef_SECRETSECRETSECRETSECRETSECRETSECRETSECRET1",
        "tk_0123456789abcdef_SECRETSECRET",
    ],
)
def test_revoking_by_a_whole_key_asks_for_its_id_without_echoing_it(
    database_url: str, given: str
) -> None:
    run(database_url, "tenants", "create", "acme")
    code, _, err = run(database_url, "keys", "revoke", given)
    assert code == 1
    assert "key id" in err
    assert "SECRET" not in err
    if given.endswith("1"):  # a well-formed key: its id is named
        assert "keys revoke 0123456789abcdef" in err


def _vkey(name: str, public_key: bytes) -> str:
    from trailkeeper.verifier import ED25519_ALG, key_id

    encoded = base64.b64encode(ED25519_ALG + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


WELL_FORMED_VKEY = _vkey("log", bytes(32))


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "url", [f"http://127.0.0.1:{_closed_port()}", "ftp://127.0.0.1", "http://[::1"]
)
def test_verify_online_unreachable_is_one_line(url: str) -> None:
    result = CliRunner().invoke(
        main, ["verify", "--online", url, "--api-key", "tk_x", "--key", WELL_FORMED_VKEY]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert url in result.stderr
    assert isinstance(result.exception, SystemExit), "no exception escaped"


def test_verify_with_a_missing_key_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["verify", "--online", "http://127.0.0.1:9", "--api-key", "k", "--key", "@nope.vkey"],
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "nope.vkey" in result.stderr


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 10_000])
def test_online_export_lines_split_on_lf_only(chunk_size: int) -> None:
    from trailkeeper.cli import _ndjson_lines

    lines = [
        json.dumps({"n": n, "s": f"a{sep}b"}, ensure_ascii=False).encode()
        for n, sep in enumerate("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r")
    ]
    body = b"\n".join(lines) + b"\n"
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    assert list(_ndjson_lines(chunks)) == lines
    assert list(_ndjson_lines([body.rstrip(b"\n")])) == lines, "a last line without LF counts"


# ---- databases that are not trailkeeper's ---------------------------------------------------

DB_COMMANDS = [["tenants", "list"], ["serve"], ["export"], ["import", "-"]]


@pytest.mark.parametrize("command", DB_COMMANDS)
def test_a_file_that_is_not_sqlite_is_one_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "text.db"
    path.write_text("hello\n")
    code, _, err = run(f"sqlite:///{path}", *command, input="")
    assert code == 1
    assert err == f"Error: {path} is not an SQLite database (file is not a database)\n"


@pytest.fixture
def foreign_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of another application, holding a table named like one of ours."""
    if database_url.startswith("sqlite:"):
        path = tmp_path / "other.db"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE tenants (x)")
        yield f"sqlite:///{path}"
        return
    name = f"trailkeeper_foreign_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (x int)")
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("command", DB_COMMANDS)
def test_a_database_of_another_application_is_one_line(
    foreign_database_url: str, command: list[str]
) -> None:
    code, _, err = run(foreign_database_url, *command, input="")
    assert code == 1
    assert err.startswith("Error: not a trailkeeper database: "), err
    assert "already exists, but trailkeeper did not create it" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["import", "/nonexistent"],
        ["verify", "--key", WELL_FORMED_VKEY, "--export", "/nonexistent"],
        ["verify", "--key", WELL_FORMED_VKEY, "--checkpoint", "/nonexistent"],
        ["key-pairs", "add", "--name", "x", "--public-key", "/nonexistent"],
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_and_exit_1(args: list[str]) -> None:
    """docs/cli.md: failures are one line and exit 1 (usage errors stay click's exit 2)."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr == "Error: cannot read '/nonexistent': No such file or directory\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "x"], "malformed --key: expected name+keyid+base64"),
        (["--key", "log+zz+AAAA"], "malformed --key: the key id is not hex"),
        (["--key", "log+00+!!"], "malformed --key: the key is not base64"),
        (["--key", "log+00000000+AAAA"], "--key is not an Ed25519 key"),
        (
            ["--key", WELL_FORMED_VKEY, "--online", "http://127.0.0.1:9", "--api-key", "\u00e9"],
            "malformed --api-key: API keys are ASCII (tk_...)",
        ),
    ],
)
def test_a_malformed_key_is_a_one_line_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["verify", *args])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


def test_config_show_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`config show | head -1`: no "Error: Broken pipe" once the reader is gone."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    shown = subprocess.run(
        f"'{sys.executable}' -m trailkeeper config show | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert shown.stdout.startswith("database_url = ")
    assert shown.stderr == ""


def test_import_failing_at_once_says_nothing_was_imported(
    database_url: str, tmp_path: Path
) -> None:
    assert run(database_url, "tenants", "create", "default")[0] == 0
    code, _, err = run(database_url, "import", "-", input="{bad\n")
    assert code == 1
    assert err.startswith("Error: line 1: ")
    assert err.endswith("(nothing was imported)\n")


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1"])
def test_a_bad_port_says_what_a_port_is(port: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", port])
    assert result.exit_code == 2
    assert f"--port must be an integer 1-65535, got '{port}'" in result.output


def test_tenant_and_key_pair_lists_have_a_header_row(database_url: str) -> None:
    assert run(database_url, "tenants", "create", "acme")[0] == 0
    code, tenants, _ = run(database_url, "tenants", "list")
    assert code == 0
    assert tenants.splitlines()[0] == "TENANT\tNAME\tCREATED\tSTATUS", tenants
    assert any(line.startswith("acme\t") for line in tenants.splitlines()[1:])
    code, pairs, _ = run(database_url, "key-pairs", "list")
    assert code == 0
    assert pairs.splitlines() == ["KEY PAIR ID\tTENANT\tNAME\tCREATED\tSTATUS"]


def test_export_query(database_url: str) -> None:
    run(database_url, "tenants", "create", "acme")
    events = [event_payload(n) for n in range(60)]
    run(
        database_url,
        "import",
        "--tenant",
        "acme",
        "--quiet",
        input="\n".join(json.dumps(e) for e in events),
    )
    code, out, _ = run(
        database_url,
        "export",
        "--tenant",
        "acme",
        "--query",
        "action:created,user.* -source:api",
        "--since",
        "2024-05-01T00:00:10Z",
    )
    assert code == 0
    expected = {
        e["id"]
        for e in events
        if e["action"] in ("created", "user.login")
        and e.get("source") != "api"
        and e["occurred_at"] >= "2024-05-01T00:00:10"
    }
    assert {json.loads(line)["id"] for line in out.splitlines()} == expected
    assert expected
    code, out, err = run(database_url, "export", "--tenant", "acme", "-q", "action:a OR b")
    assert code != 0
    assert out == ""
    [line] = err.strip().splitlines()
    assert "unsupported operator 'OR' at position 10" in line
