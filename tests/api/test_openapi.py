"""The OpenAPI document says what each route really does (issue 23, item 16); the fuzz test
(test_fuzz_openapi.py) checks the server's answers against it."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from trailkeeper.api import gr4vy
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

PUBLIC = {("get", "/healthz"), ("get", "/v1/ledger/public-key")}
# Minting a viewer token stores nothing; a key's, a stream's or a legal hold's id is chosen by the
# server (replaying and rotating a secret change one stream): nothing a client sends to these
# can conflict.
SERVER_CHOSEN_IDS = {
    "/v1/legal-holds",
    "/v1/tenants/{tenant_id}/keys",
    "/v1/viewer-tokens",
    "/v1/streams",
    "/v1/streams/{stream_id}/replay",
    "/v1/streams/{stream_id}/rotate-secret",
}
LEDGER = {
    ("get", "/v1/ledger/checkpoint"),
    ("get", "/v1/events/{event_id}/proof"),
    ("get", "/v1/ledger/consistency"),
}


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/openapi.db")
    try:
        app = create_app(AuditService(store), load_settings({}))
        yield app.openapi_schema.to_schema()
    finally:
        store.close()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _errors(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if int(status) >= 400}


def test_ledger_routes_declare_the_key_they_need(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        if (method, path) in PUBLIC:
            assert not operation.get("security"), path
            assert not _errors(operation) - {503}, path
        else:
            assert operation.get("security") == [{"bearer": []}], (method, path)
    assert {(m, p) for m, p, _ in _operations(document)} >= LEDGER


def test_export_declares_its_real_media_types_and_format_enum(document: dict[str, Any]) -> None:
    export = document["paths"]["/v1/export"]["get"]
    content = export["responses"]["200"]["content"]
    assert set(content) == {"application/x-ndjson", "text/csv"}
    assert content["text/csv"]["example"].startswith("id,tenant,occurred_at")
    assert content["application/x-ndjson"]["example"].endswith("}\n")
    [format_param] = [p for p in export["parameters"] if p["name"] == "format"]
    assert format_param["schema"]["enum"] == ["jsonl", "csv"]
    assert format_param["schema"]["default"] == "jsonl"


def test_every_operation_has_a_description_and_examples(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        assert len(operation.get("description", "")) > 40, where
        for status, response in operation["responses"].items():
            if status == "204":
                assert "content" not in response, where
                continue
            assert response["content"], (where, status)
            for body in response["content"].values():
                assert body.get("examples") or body.get("example"), (where, status)
        if "requestBody" in operation:
            for body in operation["requestBody"]["content"].values():
                assert body.get("examples"), where


def test_every_example_matches_its_schema(document: dict[str, Any]) -> None:
    """An example a client copies must be a body the server accepts or could send."""
    checked = 0
    for method, path, operation in _operations(document):
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [(status, r.get("content") or {}) for status, r in operation["responses"].items()]
        for status, content in bodies:
            for media, body in content.items():
                schema = {"components": document["components"], **body["schema"]}
                validator = jsonschema_rs.validator_for(schema)
                values = [e["value"] for e in body.get("examples", {}).values()]
                values += [body["example"]] if "example" in body else []
                for value in values:
                    errors = [e.message for e in validator.iter_errors(value)]
                    assert not errors, (method, path, status, media, errors)
                    checked += 1
    assert checked > 40


def test_each_route_lists_only_the_errors_it_can_return(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        errors = _errors(operation)
        if (method, path) in PUBLIC:
            continue
        # Every authenticated route reads the database and counts toward the rate limit.
        assert {401, 403, 429, 503} <= errors, where
        if method == "get":
            assert not errors & {409, 413}, where
        if method == "post":
            assert {400, 413} <= errors, where
            # Only a key's id is chosen by the server: nothing a client sends can conflict.
            assert (409 in errors) == (path not in SERVER_CHOSEN_IDS), where
        takes_input = bool(operation.get("requestBody")) or any(
            p["in"] == "query" for p in operation.get("parameters", [])
        )
        assert (400 in errors) == takes_input, where
        if "{" not in path or path.endswith("/proof"):
            assert (404 in errors) == path.endswith("/proof"), where
        else:
            assert 404 in errors, where
    assert _errors(document["paths"]["/healthz"]["get"]) == {503}
    assert _errors(document["paths"]["/v1/ledger/public-key"]["get"]) == set()


def test_error_examples_are_in_each_dialects_shape(document: dict[str, Any]) -> None:
    shapes = {
        "/audit-events": {"message", "type"},
        "/audit-logs": {"type", "code", "status", "message", "details"},
    }
    for method, path, operation in _operations(document):
        expected = next((s for p, s in shapes.items() if path.startswith(p)), {"error"})
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            [example] = response["content"]["application/json"]["examples"].values()
            assert set(example["value"]) == expected, (method, path, status)
            if expected == {"error"}:
                assert example["value"]["error"]["status"] == int(status)


def _example(operation: dict[str, Any], status: str) -> Any:
    [example] = operation["responses"][status]["content"]["application/json"]["examples"].values()
    return example["value"]


def _message(value: Any) -> str:
    return str(value["error"]["message"] if "error" in value else value["message"])


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("get", "/audit-events", "`audit-logs.read` scope"),
        ("get", "/audit-logs", "`audit-logs.read` scope"),
        ("post", "/v1/events", "`events.write` scope"),
        ("get", "/v1/events", "`events.read` scope"),
        ("post", "/v1/key-pairs", "`key-pairs.write`, `audit-logs.read` scopes"),
        ("post", "/v1/tenants", "`admin` scope"),
        ("post", "/v1/viewer-tokens", "`viewer.create` scope"),
    ],
)
def test_each_403_example_names_the_routes_own_scope(
    document: dict[str, Any], method: str, path: str, scopes: str
) -> None:
    operation = document["paths"][path][method]
    assert _message(_example(operation, "403")) == f"this credential lacks the {scopes}"


def test_a_route_with_a_body_shows_a_body_error_as_its_400(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        if "400" not in operation["responses"]:
            continue
        about_body = "body" in json.dumps(_example(operation, "400"))
        assert about_body == bool(operation.get("requestBody")), (method, path)


def test_no_201_promises_a_location_it_does_not_send(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        created = operation["responses"].get("201")
        if created and not (created.get("headers") or {}).get("Location"):
            assert "URL follows" not in created["description"], (method, path)


def test_gr4vy_action_lists_its_accepted_values(document: dict[str, Any]) -> None:
    [action] = [
        p for p in document["paths"]["/audit-logs"]["get"]["parameters"] if p["name"] == "action"
    ]
    assert set(action["schema"]["enum"]) - {None} == set(gr4vy.ACTIONS)
