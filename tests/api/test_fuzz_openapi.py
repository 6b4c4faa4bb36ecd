"""Property-based fuzzing of every route from our own OpenAPI document (schemathesis).

Checks: no 5xx, only documented status codes, and every response matches its documented
schema (errors included, in each dialect's own shape). Both schema-valid and schema-violating
inputs are generated. TRAILKEEPER_FUZZ_EXAMPLES sets examples per operation and mode.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from trailkeeper import auth
from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

EXAMPLES = int(os.environ.get("TRAILKEEPER_FUZZ_EXAMPLES", "40"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _cases() -> list[Any]:
    """(operation, mode) pairs; invalid inputs only where an operation takes any input."""
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/labels.db")
    try:
        app = create_app(AuditService(store), load_settings({}))
        document = app.openapi_schema.to_schema()
        schema = schemathesis.openapi.from_dict(document)
        cases = []
        for result in schema.get_all_operations():
            operation = result.ok()
            raw = document["paths"][operation.path][operation.method.lower()]
            modes = [GenerationMode.POSITIVE]
            if raw.get("parameters") or raw.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            cases += [
                pytest.param(operation.label, mode, id=f"{operation.label}-{mode.value}")
                for mode in modes
            ]
        return cases
    finally:
        store.close()


@pytest.mark.parametrize(("label", "mode"), _cases())
def test_fuzz_operation(
    service: AuditService, database_url: str, label: str, mode: GenerationMode
) -> None:
    _, token = service.create_key("acme", "fuzz")
    if " /v1/tenants" in label:  # the admin API: an operator's key
        _, token = service.create_key(auth.SYSTEM_TENANT, "fuzz", (auth.SCOPE_ADMIN,))
    headers = {"Authorization": f"Bearer {token}", "x-gr4vy-merchant-account-id": "acme"}
    app = create_app(
        service,
        load_settings(
            {}, database_url=database_url, rate_limit_per_second=0, checkpoint_interval_seconds=0
        ),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
