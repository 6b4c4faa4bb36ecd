"""Docs that the suite keeps honest: every setting, command and route is documented."""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import click
from litestar import Litestar

from trailkeeper import auth
from trailkeeper.api.app import create_app
from trailkeeper.cli import main
from trailkeeper.config import ENV_PREFIX, SETTINGS, Settings, load_settings
from trailkeeper.model import EMAIL_PATTERN, EVENT_ID_PATTERN, IP_PATTERN
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

DOCS = Path(__file__).parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    assert set(SETTINGS) == set(Settings.__dataclass_fields__)
    for name in SETTINGS:
        assert f"`{ENV_PREFIX}{name.upper()}`" in text, name


def _commands(group: click.Group, prefix: str = "trailkeeper") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(main)
    assert len(commands) >= 8
    for command in commands:
        assert f"`{command}" in text, command


def test_every_route_is_documented(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'docs.db'}")
    try:
        app: Litestar = create_app(AuditService(store), load_settings({}))
        text = (DOCS / "api.md").read_text()
        paths = app.openapi_schema.paths or {}
        assert paths
        for path, item in paths.items():
            for method in ("get", "post", "put", "patch", "delete"):
                if getattr(item, method, None) is not None:
                    assert f"`{method.upper()} {path}" in text, (method, path)
    finally:
        store.close()


def test_openapi_states_the_shapes_validation_checks(tmp_path: Path) -> None:
    """The id, email and IP patterns are checked in validation, not by msgspec (model.py), and
    published through Litestar's reading of `extra_json_schema`: clients and the fuzz tests
    must still see them in the schema."""
    store = open_store(f"sqlite:///{tmp_path / 'docs.db'}")
    try:
        app: Litestar = create_app(AuditService(store), load_settings({}))
        components = app.openapi_schema.to_schema()["components"]["schemas"]
    finally:
        store.close()

    def pattern(component: str, field: str) -> str | None:
        found = [
            variant.get("pattern")
            for variant in [
                components[component]["properties"][field],
                *components[component]["properties"][field].get("oneOf", []),
            ]
        ]
        return next((p for p in found if p), None)

    assert pattern("EventIn", "id") == EVENT_ID_PATTERN
    assert pattern("Actor", "email") == EMAIL_PATTERN
    assert pattern("Target", "email") == EMAIL_PATTERN
    assert pattern("Context", "ip") == IP_PATTERN


def test_cli_doc_lists_every_scope() -> None:
    text = (DOCS / "cli.md").read_text()
    for scope in auth.ALL_SCOPES:
        assert f"`{scope}`" in text, scope


def _sh_blocks(text: str) -> list[list[str]]:
    """The commands of each ```sh block, comments left out."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in blocks
    ]


def test_sqlite_backup_commands_work_as_printed(tmp_path: Path) -> None:
    """operations.md's backup commands, run in a fresh directory holding only data/ (they
    failed until someone made backups/ by hand). The sqlite3 CLI line runs where installed."""
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'trailkeeper.db'}")
    try:
        AuditService(store).create_tenant("acme")
    finally:
        store.close()
    commands = _sh_blocks((DOCS / "operations.md").read_text())[0]
    assert commands[0] == "mkdir -p backups"
    ran = 0
    for command in commands:
        program = shlex.split(command)[0]
        if shutil.which(program) is None:
            continue
        subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=60)
        ran += 1
    assert ran >= 2, "mkdir and at least one way of copying ran"
    with contextlib.closing(sqlite3.connect(tmp_path / "backups" / "tk.db")) as copy:
        assert copy.execute("SELECT id FROM tenants").fetchall() == [("acme",)]


def test_docs_point_only_to_files_that_exist() -> None:
    """Relative links in docs/*.md and README.md resolve, and no doc sends readers to the
    reference pages, which are not shipped (compatibility.md carries their facts)."""
    for page in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]:
        text = page.read_text()
        assert "shared/reference" not in text, page.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), (page.name, target)
