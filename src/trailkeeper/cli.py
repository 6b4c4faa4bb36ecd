"""`trailkeeper` command line: serve, import, export, keys, tenants. A thin layer on the service."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import msgspec

from trailkeeper import __version__, auth, retention
from trailkeeper.api import viewer
from trailkeeper.config import (
    Settings,
    load_settings,
    load_settings_with_sources,
    masked,
    redact_url,
)
from trailkeeper.errors import Conflict, InvalidInput, TrailkeeperError
from trailkeeper.formats import EXPORT_FORMATS, parse_event_line
from trailkeeper.model import (
    MAX_BATCH,
    OUTCOMES,
    ApiKey,
    EventFilter,
    EventIn,
    Outcome,
    format_ts,
    utc_now_ms,
)
from trailkeeper.service import AdminActor, AuditService, search_query
from trailkeeper.store import open_store
from trailkeeper.streams.manage import StreamAdmin
from trailkeeper.streams.model import (
    DEFAULT_BATCH,
    DEFAULT_BATCH_WAIT_MS,
    DESTINATIONS,
    StreamIn,
)
from trailkeeper.streams.model import FILTERS as STREAM_FILTERS

F = TypeVar("F", bound=Callable[..., Any])
QUICKSTART_KEY = "quickstart"
QUICKSTART_ADMIN_KEY = "quickstart-admin"


def _fail_cleanly(func: F) -> F:
    """Show trailkeeper and file errors as one line on stderr (exit 1), never a traceback:
    docs/cli.md promises one line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrailkeeperError as exc:
            raise click.ClickException(exc.message) from None
        except BrokenPipeError:
            raise  # the reader went away (`| head`): click exits quietly
        except OSError as exc:
            raise click.ClickException(_os_error(exc)) from None

    return wrapper  # type: ignore[return-value]


class _UsageLine(click.ClickException):
    """A usage error said in one line (click's own print the usage block too)."""

    exit_code = 2


class _InputFile(click.File):
    """A file the command reads: one that cannot be opened is a one-line failure (exit 1),
    not a usage error."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            raise click.ClickException(f"cannot read {exc.message}") from None


def _os_error(exc: OSError) -> str:
    """`Permission denied: 'data/trailkeeper.db'` rather than `[Errno 13] ...`."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename!r}" if exc.filename else reason


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    return load_settings(
        config_file=ctx.obj.get("config"), database_url=ctx.obj.get("database_url"), **overrides
    )


@contextlib.contextmanager
def _service(ctx: click.Context, *, create: bool = False) -> Iterator[AuditService]:
    """The service for one command, closed afterwards. Only commands that can do something
    with an empty database (`create`) may make one."""
    service = _open(_settings(ctx), create=create)
    try:
        yield service
    finally:
        service.close()


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for other engines and in-memory databases)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def _open(settings: Settings, *, create: bool) -> AuditService:
    """Open the database. A SQLite file that does not exist yet is only made when `create`,
    and then said on stderr: a command run from the wrong directory must not quietly start an
    empty log next to the real one."""
    path = _sqlite_file(settings.database_url)
    if path is None or path.exists():
        return _connect(settings)
    if not create:
        raise click.ClickException(
            f"no database at {path.absolute()} (run from the directory that holds it, or pass "
            "--database-url / set TRAILKEEPER_DATABASE_URL)"
        )
    service = _connect(settings)
    click.echo(f"created a new database at {path.absolute()}", err=True)
    return service


def _connect(settings: Settings) -> AuditService:
    store = open_store(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pg_pool_size=settings.pg_pool_size,
        timeout=settings.db_timeout_seconds,
    )
    return AuditService(
        store,
        secret=settings.secret,
        log_origin=settings.log_origin,
        signing_key=settings.signing_key,
        credential_cache_seconds=settings.credential_cache_seconds,
    )


@click.group()
@click.version_option(__version__, prog_name="trailkeeper")
@click.option(
    "--database-url",
    metavar="URL",
    help="sqlite:///path.db or postgresql://... (default: $TRAILKEEPER_DATABASE_URL or "
    "sqlite:///data/trailkeeper.db).",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    envvar="TRAILKEEPER_CONFIG",
    help="TOML file of settings (keys as in docs/configuration.md; the environment and flags "
    "override it). Default: $TRAILKEEPER_CONFIG, else none.",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None, config_file: str | None) -> None:
    """trailkeeper: a self-hosted audit log service."""
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url
    ctx.obj["config"] = config_file


# ---- serve ----------------------------------------------------------------------------------


class PortType(click.ParamType[int]):
    """A TCP port: one message for every bad value (click's says "not a valid integer range")."""

    name = "port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip()
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
            self.fail(f"--port must be an integer 1-65535, got {value!r}", param, ctx)
        return int(text)


@main.command()
@click.option("--host", help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=PortType(), help="Port to listen on (default 8000).")
@click.option(
    "--print-key",
    is_flag=True,
    help=f"Mint a fresh key named '{QUICKSTART_KEY}' for tenant 'default' (creating the tenant "
    f"if needed, revoking the previous such key) and an admin key named '{QUICKSTART_ADMIN_KEY}' "
    "(likewise), and print both. Meant for local development (`make run`).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    help="json (default: one object per line) or text (for development).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (default 1; see docs/operations.md).",
)
@click.pass_context
@_fail_cleanly
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    print_key: bool,
    log_format: str | None,
    workers: int | None,
) -> None:
    """Run the HTTP server. On an empty database, creates tenant 'default' and prints a key."""
    settings = _settings(ctx, host=host, port=port, log_format=log_format, workers=workers)
    _refuse_unsafe_workers(settings)
    with _metrics_dir(settings.workers):
        # Imported once PROMETHEUS_MULTIPROC_DIR is set: prometheus-client reads it on import.
        from trailkeeper.api.observability import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        # Listen before anything is minted: a key printed "once" by a server that then cannot
        # start would be lost, and the next start would print none.
        sockets = _listen(settings.host, settings.port)
        try:
            service = _open(settings, create=True)
            try:
                by = AdminActor.cli("trailkeeper serve")
                token = service.bootstrap(by=by)
                admin_token = None
                if print_key:
                    token = token or _fresh_quickstart_key(service, by)
                    admin_token = _fresh_admin_key(service, by)
                _print_banner(settings, token, has_default=_has_default(service))
                if admin_token is not None:
                    _print_admin_banner(settings, admin_token)
            except BaseException:
                service.close()
                raise
            if settings.workers == 1:
                _serve_one(settings, sockets, service)
            else:
                service.close()  # before forking: each worker opens its own
                _serve_many(settings, sockets)
        finally:
            for sock in sockets:
                sock.close()


def _refuse_unsafe_workers(settings: Settings) -> None:
    """Several workers on one SQLite file are safe (every write takes the database's write
    lock with BEGIN IMMEDIATE, and log indexes and sequence numbers are read under it); on an
    in-memory database each worker would have a log of its own."""
    url = settings.database_url
    if settings.workers > 1 and url.startswith("sqlite:") and _sqlite_file(url) is None:
        raise click.ClickException(
            "--workers > 1 needs a database file or PostgreSQL: with an in-memory SQLite "
            "database every worker would keep a separate log"
        )


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a PROMETHEUS_MULTIPROC_DIR for their metrics (a fresh temporary
    one, removed at exit, unless one is set)."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="trailkeeper-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _serve_one(settings: Settings, sockets: list[socket.socket], service: AuditService) -> None:
    """Serve in this process (the service is closed by the app's shutdown)."""
    from trailkeeper.api.observability import process_exited

    try:
        if not _run(service, settings, sockets):
            raise click.ClickException("the server did not start (see the log above)")
    finally:
        service.close()
        process_exited()


def _serve_many(settings: Settings, sockets: list[socket.socket]) -> None:
    """Fork `settings.workers` processes on the same sockets (api/server.py supervises)."""
    from trailkeeper.api.observability import process_exited
    from trailkeeper.api.server import supervise

    def worker() -> int:
        service = _connect(settings)
        try:
            return 0 if _run(service, settings, sockets) else 1
        finally:
            service.close()
            process_exited()

    if supervise(settings.workers, worker) != 0:
        raise click.ClickException("a worker did not stop cleanly (see the log above)")


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening sockets for every address `host` resolves to (as uvicorn would bind
    them), or a one-line error when the port is taken or the host unknown."""
    where = f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot listen on {where}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise click.ClickException(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sockets


def _run(service: AuditService, settings: Settings, sockets: list[socket.socket]) -> bool:
    """Serve on sockets already bound (uvicorn.run would bind them itself, too late) until
    SIGTERM; whether the server started."""
    import threading

    from trailkeeper.api.app import create_app
    from trailkeeper.api.server import run_server

    draining = threading.Event()
    app = create_app(service, settings, owns_service=True, draining=draining)
    return run_server(app, settings, sockets, draining)


def _has_default(service: AuditService) -> bool:
    return any(tenant.id == "default" for tenant in service.list_tenants())


def _fresh_quickstart_key(service: AuditService, by: AdminActor) -> str:
    """A new quickstart key for tenant `default`, made first if tenants were created by hand
    before the first `serve` (bootstrap only makes it on an empty database)."""
    if not _has_default(service):
        with contextlib.suppress(Conflict):  # another process made it meanwhile
            service.create_tenant("default", "Default tenant", by=by)
    return _replace_key(service, "default", QUICKSTART_KEY, auth.DEFAULT_SCOPES, by)


def _fresh_admin_key(service: AuditService, by: AdminActor) -> str:
    """A new quickstart admin key (the previous one revoked), able to read the operator log."""
    scopes = (auth.SCOPE_ADMIN, auth.SCOPE_EVENTS_READ)
    return _replace_key(service, auth.SYSTEM_TENANT, QUICKSTART_ADMIN_KEY, scopes, by)


def _replace_key(
    service: AuditService, tenant: str, name: str, scopes: Iterable[str], by: AdminActor
) -> str:
    if tenant == auth.SYSTEM_TENANT or _has_tenant(service, tenant):
        for key in service.list_keys(tenant):
            if key.name == name and key.revoked_at is None:
                service.revoke_key(key.id, by=by)
    _, token = service.create_key(tenant, name, scopes, by=by)
    return token


def _has_tenant(service: AuditService, tenant: str) -> bool:
    return any(t.id == tenant for t in service.list_tenants())


def _print_admin_banner(settings: Settings, token: str) -> None:
    base = f"http://{settings.host}:{settings.port}"
    echo = functools.partial(click.echo, err=True)
    echo("Admin key (scope admin: tenants and their keys; shown once):")
    echo(f"  {token}")
    echo(f"  curl -s {base}/v1/tenants -H 'Authorization: Bearer {token}'")
    echo("")


def _print_banner(settings: Settings, token: str | None, *, has_default: bool) -> None:
    base = f"http://{settings.host}:{settings.port}"
    echo = functools.partial(click.echo, err=True)
    echo(f"trailkeeper {__version__} on {base}  (database: {redact_url(settings.database_url)})")
    if token is None:
        tenant = "default" if has_default else "TENANT"
        echo(f"Create an API key with: trailkeeper keys create --tenant {tenant} --name NAME")
        return
    echo("")
    echo("API key for tenant 'default' (shown once, store it now):")
    echo(f"  {token}")
    echo("")
    echo("Try it:")
    echo(
        f"  curl -s -X POST {base}/v1/events -H 'Authorization: Bearer {token}' "
        "-H 'Content-Type: application/json' "
        """-d '{"action": "user.login", "actor": {"id": "user-1"}, "source": "cli"}'"""
    )
    echo(f"  curl -s {base}/v1/events -H 'Authorization: Bearer {token}'")
    echo(f"API docs: {base}/docs")
    echo("")


# ---- config ---------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Inspect the settings in effect."""


@config_group.command("show")
@click.pass_context
@_fail_cleanly
def config_show(ctx: click.Context) -> None:
    """Print the effective settings as TOML, secrets masked, each with where it came from
    (default, the config file, an environment variable or a flag)."""
    settings, sources = load_settings_with_sources(
        config_file=ctx.obj.get("config"), database_url=ctx.obj.get("database_url")
    )
    for name, value in masked(settings).items():
        click.echo(f"{name} = {_toml_value(value)}  # {sources[name]}")


def _toml_value(value: object) -> str:
    """A TOML literal for a setting's value (strings escaped as TOML basic strings)."""
    if isinstance(value, str):
        escaped = "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c
            for c in value
        )
        return f'"{escaped}"'
    return repr(value)


# ---- import / export ------------------------------------------------------------------------


@main.command("import")
@click.argument("source", type=_InputFile("rb"), default="-")
@click.option("--tenant", default="default", show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(1, MAX_BATCH), default=MAX_BATCH, show_default=True
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@_fail_cleanly
def import_events(
    ctx: click.Context, source: IO[bytes], tenant: str, batch_size: int, quiet: bool
) -> None:
    """Import events from a JSON-lines file (or - for stdin).

    Each line is one event as accepted by POST /v1/events; trailkeeper's own export is accepted
    too. Batches are stored all-or-nothing; events with ids can be imported again safely.
    """
    with _service(ctx) as service:
        service.require_tenant(tenant)
        total = None if quiet else _file_size(source)
        created = existing = 0
        with _progress(total) as advance:
            try:
                for batch, lines in _batches(source, batch_size, advance):
                    try:
                        results = service.ingest(tenant, batch)
                    except InvalidInput as exc:
                        raise _BadLine(_at_line(exc, lines)) from None
                    new = sum(is_new for _, is_new in results)
                    created, existing = created + new, existing + len(results) - new
            except _BadLine as exc:
                done = (
                    "events before this batch were imported"
                    if created + existing
                    else "nothing was imported"
                )
                raise click.ClickException(f"{exc} ({done})") from None
        if created:
            service.after_bulk_load()
        click.echo(f"imported {created} new events, {existing} already present", err=True)


class _BadLine(Exception):
    """A line of an import that cannot be stored (its message names the line)."""


@contextlib.contextmanager
def _progress(total_bytes: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar over bytes read when the size is known (a file), else nothing."""
    if total_bytes is None:
        yield lambda _: None
        return
    with click.progressbar(length=total_bytes, label="importing", file=sys.stderr) as bar:
        yield bar.update


def _file_size(stream: IO[bytes]) -> int | None:
    try:
        return Path(stream.name).stat().st_size if stream.seekable() else None
    except (AttributeError, OSError, TypeError):
        return None


_EXPORT_HEADER = b'{"trailkeeper_export"'


def _batches(
    source: IO[bytes], size: int, progress: Callable[[int], None]
) -> Iterator[tuple[list[EventIn], list[int]]]:
    """Batches of parsed events, each with the line numbers its events came from."""
    batch: list[EventIn] = []
    lines: list[int] = []
    for number, line in enumerate(source, 1):
        progress(len(line))
        if not line.strip() or (not lines and _EXPORT_HEADER in line[:40]):
            continue  # blank, or the header of an export of a purged log (docs/retention.md)
        try:
            batch.append(parse_event_line(line))
        except ValueError as exc:
            raise _BadLine(f"line {number}: {exc}") from None
        lines.append(number)
        if len(batch) == size:
            yield batch, lines
            batch, lines = [], []
    if batch:
        yield batch, lines


def _at_line(error: InvalidInput, lines: list[int]) -> str:
    """A validation error for an event of a batch ("events[3].id ...") as the file's line
    ("line 4004: id ...")."""
    index = error.event_index
    if index is None or not error.details:
        return error.message
    detail = error.details[0]
    field = str(detail["field"]).removeprefix(f"events[{index}]").lstrip(".")
    return f"line {lines[index]}: {field} {detail['message']}"


def _filter_options(func: F) -> F:
    options = [
        click.option("--actor-id"),
        click.option("--action"),
        click.option("--outcome", type=click.Choice(OUTCOMES)),
        click.option("--type", "type_"),
        click.option("--target-type"),
        click.option("--target-id"),
        click.option("--source"),
        click.option("--since", type=click.DateTime(_TIME_FORMATS), help="UTC, inclusive."),
        click.option("--until", type=click.DateTime(_TIME_FORMATS), help="UTC, exclusive."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_TIME_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
]


def _as_utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@main.command("export")
@click.option("--tenant", default="default", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="jsonl", show_default=True
)
@click.option(
    "--output", "-o", type=click.File("wb"), default="-", help="File to write (default: stdout)."
)
@_filter_options
@click.option(
    "--query",
    "-q",
    default="",
    help="A search query (docs/search.md), ANDed with the filter options, e.g. "
    "'action:user.* -outcome:failure after:2026-01-01'.",
)
@click.pass_context
@_fail_cleanly
def export_events(
    ctx: click.Context,
    tenant: str,
    fmt: str,
    output: IO[bytes],
    query: str,
    actor_id: str | None,
    action: str | None,
    outcome: Outcome | None,
    type_: str | None,
    target_type: str | None,
    target_id: str | None,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Export events, oldest first, as JSON lines or CSV. Streams in constant memory."""
    filters = EventFilter(
        actor_id=actor_id,
        action=action,
        outcome=outcome,
        type=type_,
        target_type=target_type,
        target_id=target_id,
        source=source,
        since=_as_utc(since),
        until=_as_utc(until),
    )
    selection = search_query(filters, query)  # a syntax error fails before any output
    with _service(ctx) as service:
        service.require_tenant(tenant)
        for chunk in service.export(tenant, selection, fmt):
            output.write(chunk)
        output.flush()


# ---- keys and tenants -----------------------------------------------------------------------


@main.command("viewer-link")
@click.option("--tenant", required=True, help="Whose events the link shows.")
@click.option("--query", default="", help="Pin the link to a query (ANDed with every search).")
@click.option(
    "--ttl",
    type=click.IntRange(60, 86400),
    default=900,
    show_default=True,
    help="Seconds the link stays valid (at most 24 h).",
)
@click.option(
    "--allowed-origin",
    "origins",
    multiple=True,
    help="An origin allowed to frame the viewer (repeatable), e.g. https://app.example.com.",
)
@click.option(
    "--base-url",
    default=None,
    help="Where this server is reached. Default: http://<host>:<port> from the settings.",
)
@click.pass_context
@_fail_cleanly
def viewer_link(
    ctx: click.Context,
    tenant: str,
    query: str,
    ttl: int,
    origins: tuple[str, ...],
    base_url: str | None,
) -> None:
    """Print a link that opens the event viewer on one tenant's events (docs/viewer.md)."""
    settings = _settings(ctx)
    with _service(ctx) as service:
        _, path, expires = viewer.mint(
            service, tenant, ttl_seconds=ttl, pinned_query=query, allowed_origins=origins
        )
    base = (base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    click.echo(base + path)
    click.echo(f"valid until {format_ts(expires)} for tenant {tenant!r}", err=True)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--tenant", help="The tenant the key is for (default: 'default').")
@click.option("--name", required=True, help="What the key is for, e.g. 'billing-service'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice((*auth.ALL_SCOPES, auth.SCOPE_ADMIN)),
    help="Repeat for several. Default: all tenant scopes (with --admin: admin).",
)
@click.option(
    "--admin",
    is_flag=True,
    help=f"An operator key for the admin API: a key of the operator tenant {auth.SYSTEM_TENANT} "
    "with scope admin (add --scope events.read to also read the operator log).",
)
@click.option(
    "--expires-at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="When the key stops working (e.g. 2025-05-01 or 2025-05-01T00:00:00+00:00; a date "
    "means midnight UTC). Default: never.",
)
@click.pass_context
@_fail_cleanly
def keys_create(
    ctx: click.Context,
    tenant: str | None,
    name: str,
    scopes: tuple[str, ...],
    admin: bool,
    expires_at: datetime | None,
) -> None:
    """Create a key and print its secret (once: only a hash is stored). Recorded in the
    operator log."""
    if admin and tenant not in (None, auth.SYSTEM_TENANT):
        raise click.UsageError("--admin keys belong to the operator tenant; drop --tenant")
    tenant = auth.SYSTEM_TENANT if admin else tenant or "default"
    if admin:
        scopes = tuple(dict.fromkeys((auth.SCOPE_ADMIN, *scopes)))
    # An operator key is the first thing a new install may need: it may make the database.
    with _service(ctx, create=admin) as service:
        key, token = service.create_key(
            tenant,
            name,
            scopes or auth.DEFAULT_SCOPES,
            expires_at=_as_utc(expires_at),
            by=AdminActor.cli("trailkeeper keys create"),
        )
    click.echo(token)
    expiry = f", expires {format_ts(key.expires_at)}" if key.expires_at else ""
    click.echo(
        f"key {key.id} for tenant {tenant!r}, scopes: {' '.join(key.scopes)}{expiry}", err=True
    )


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.pass_context
@_fail_cleanly
def keys_list(ctx: click.Context, tenant: str | None) -> None:
    """List keys (never their secrets)."""
    with _service(ctx) as service:
        rows = service.list_keys(tenant)
    now = utc_now_ms()
    click.echo(
        f"{'KEY ID':<17} {'TENANT':<16} {'NAME':<20} {'CREATED':<25} {'LAST USED':<25} "
        f"{'STATUS':<8} SCOPES"
    )
    for key in rows:
        status = _key_status(key, now)
        used = format_ts(key.last_used_at) if key.last_used_at else "never"
        click.echo(
            f"{key.id:<17} {key.tenant:<16} {key.name:<20} {format_ts(key.created_at):<25} "
            f"{used:<25} "
            f"{status:<8} {' '.join(key.scopes)}"
        )


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@_fail_cleanly
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; requests with it get 401 from then on (a running server may accept it
    for up to TRAILKEEPER_CREDENTIAL_CACHE_SECONDS more)."""
    if key_id.startswith("tk_"):
        raise click.ClickException(_whole_key_hint(key_id))
    with _service(ctx) as service:
        service.revoke_key(key_id, by=AdminActor.cli("trailkeeper keys revoke"))
    click.echo(f"revoked {key_id}", err=True)


def _key_status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at:
        return "revoked"
    if key.expires_at and key.expires_at <= now:
        return "expired"
    return "active"


def _whole_key_hint(token: str) -> str:
    """What to pass instead of a whole key; never repeats the key, whose secret it holds."""
    key_id = auth.key_id_of(token)
    instead = f"`trailkeeper keys revoke {key_id}`" if key_id else "the KEY ID from `keys list`"
    return f"that is an API key, not a key id: pass its key id instead ({instead})"


@main.group("key-pairs")
def key_pairs() -> None:
    """Key pairs whose signed JWTs (ES512) authenticate the Gr4vy-compatible API."""


@key_pairs.command("add")
@click.option("--tenant", default="default", show_default=True)
@click.option("--name", required=True)
@click.option(
    "--public-key",
    "public_key",
    type=_InputFile("r"),
    required=True,
    help="PEM file with the EC P-521 public key.",
)
@click.pass_context
@_fail_cleanly
def key_pairs_add(ctx: click.Context, tenant: str, name: str, public_key: IO[str]) -> None:
    """Register the public key of a key pair you made yourself."""
    with _service(ctx) as service:
        pair = service.add_key_pair(tenant, name, public_key.read())
    click.echo(pair.id)


@key_pairs.command("generate")
@click.option("--tenant", default="default", show_default=True)
@click.option("--name", required=True)
@click.pass_context
@_fail_cleanly
def key_pairs_generate(ctx: click.Context, tenant: str, name: str) -> None:
    """Make a key pair; prints the private key PEM once (only the public key is kept)."""
    with _service(ctx) as service:
        pair, private_pem = service.generate_key_pair(tenant, name)
    click.echo(private_pem, nl=False)
    click.echo(f"key pair {pair.id} for tenant {tenant!r}", err=True)


@key_pairs.command("list")
@click.option("--tenant", help="Only this tenant's key pairs.")
@click.pass_context
@_fail_cleanly
def key_pairs_list(ctx: click.Context, tenant: str | None) -> None:
    """List key pairs (ids are the JWT `kid` values)."""
    with _service(ctx) as service:
        pairs = service.list_key_pairs(tenant)
    click.echo("KEY PAIR ID\tTENANT\tNAME\tCREATED\tSTATUS")
    for pair in pairs:
        status = "revoked" if pair.revoked_at else "active"
        click.echo(f"{pair.id}\t{pair.tenant}\t{pair.name}\t{format_ts(pair.created_at)}\t{status}")


# Ids are base64url thumbprints and may start with '-': taken as the id, not as an option.
@key_pairs.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("key_pair_id")
@click.option(
    "--tenant", help="The tenant whose pair to revoke (needed when several registered the key)."
)
@click.pass_context
@_fail_cleanly
def key_pairs_revoke(ctx: click.Context, key_pair_id: str, tenant: str | None) -> None:
    """Revoke a key pair; its tokens get 401 from then on (a running server may accept them
    for up to TRAILKEEPER_CREDENTIAL_CACHE_SECONDS more)."""
    with _service(ctx) as service:
        service.revoke_key_pair(key_pair_id, tenant)
    click.echo(f"revoked {key_pair_id}", err=True)


@main.group()
def tenants() -> None:
    """Create, list, rename, deactivate and reactivate tenants (a.k.a. merchant accounts).
    Every change is recorded in the operator log (tenant _system)."""


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--name", help="Display name (default: the id).")
@click.pass_context
@_fail_cleanly
def tenants_create(ctx: click.Context, tenant_id: str, name: str | None) -> None:
    """Create a tenant."""
    with _service(ctx, create=True) as service:
        service.create_tenant(tenant_id, name, by=AdminActor.cli("trailkeeper tenants create"))
    click.echo(f"created tenant {tenant_id}", err=True)


@tenants.command("list")
@click.pass_context
@_fail_cleanly
def tenants_list(ctx: click.Context) -> None:
    """List tenants: id, name, created, status (active or deactivated)."""
    with _service(ctx) as service:
        click.echo("TENANT\tNAME\tCREATED\tSTATUS")
        for tenant in service.list_tenants():
            status = "active" if tenant.active else "deactivated"
            click.echo(f"{tenant.id}\t{tenant.name}\t{format_ts(tenant.created_at)}\t{status}")


@tenants.command("rename")
@click.argument("tenant_id")
@click.argument("name")
@click.pass_context
@_fail_cleanly
def tenants_rename(ctx: click.Context, tenant_id: str, name: str) -> None:
    """Change a tenant's display name (its id never changes)."""
    with _service(ctx) as service:
        service.update_tenant(tenant_id, name=name, by=AdminActor.cli("trailkeeper tenants rename"))
    click.echo(f"renamed tenant {tenant_id}", err=True)


@tenants.command("deactivate")
@click.argument("tenant_id")
@click.pass_context
@_fail_cleanly
def tenants_deactivate(ctx: click.Context, tenant_id: str) -> None:
    """Refuse every key and key-pair JWT of the tenant (401); its data stays. A running
    server follows within TRAILKEEPER_CREDENTIAL_CACHE_SECONDS."""
    with _service(ctx) as service:
        by = AdminActor.cli("trailkeeper tenants deactivate")
        service.update_tenant(tenant_id, active=False, by=by)
    click.echo(f"deactivated tenant {tenant_id}", err=True)


@tenants.command("reactivate")
@click.argument("tenant_id")
@click.pass_context
@_fail_cleanly
def tenants_reactivate(ctx: click.Context, tenant_id: str) -> None:
    """Let the tenant's unrevoked, unexpired keys in again."""
    with _service(ctx) as service:
        by = AdminActor.cli("trailkeeper tenants reactivate")
        service.update_tenant(tenant_id, active=True, by=by)
    click.echo(f"reactivated tenant {tenant_id}", err=True)


@tenants.command("retention")
@click.argument("tenant_id")
@click.option("--days", type=click.IntRange(1, 36500), help="Keep events this many days.")
@click.option("--forever", is_flag=True, help="Keep events for ever (the default).")
@click.option(
    "--personal-key",
    "personal_keys",
    multiple=True,
    help="A metadata key holding personal data, which an erasure redacts (repeat; replaces "
    "the list; give '' alone to clear it).",
)
@click.pass_context
@_fail_cleanly
def tenants_retention(
    ctx: click.Context,
    tenant_id: str,
    days: int | None,
    forever: bool,
    personal_keys: tuple[str, ...],
) -> None:
    """Set how long the tenant's events are kept after they were received, and which
    metadata keys are personal data (docs/retention.md). Shows the settings."""
    if days is not None and forever:
        raise click.UsageError("give --days or --forever, not both")
    changes: dict[str, Any] = {}
    if days is not None or forever:
        changes["retention_days"] = days
    if personal_keys:
        changes["personal_metadata_keys"] = [k for k in personal_keys if k]
    with _service(ctx) as service:
        by = AdminActor.cli("trailkeeper tenants retention")
        tenant = service.update_tenant(tenant_id, by=by, **changes)
    kept = "for ever" if tenant.retention_days is None else f"{tenant.retention_days} days"
    personal = ", ".join(tenant.personal_metadata_keys) or "none"
    click.echo(f"{tenant.id}: events kept {kept}; personal metadata keys: {personal}")


@main.command()
@click.option("--tenant", help="Only this tenant (409 if it is on legal hold).")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.pass_context
@_fail_cleanly
def purge(ctx: click.Context, tenant: str | None, dry_run: bool) -> None:
    """Delete events past their tenant's retention_days, oldest first, 1000 per transaction.
    Proofs and exports of what remains still verify (docs/retention.md)."""
    with _service(ctx) as service:
        results = retention.purge(service, tenant, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    for result in results:
        click.echo(
            f"{result.tenant}: {verb} {result.purged} events; log starts at "
            f"index {result.first_index}"
        )
    if not results:
        click.echo("no tenant has a retention policy to apply", err=True)


@main.command()
@click.option("--tenant", required=True)
@click.option("--actor-id", help="Erase the events this actor did.")
@click.option("--email", help="Erase the events whose actor or target has this email.")
@click.option("--target-id", help="Erase the events done to this target.")
@click.option("--reason", required=True, help="Why (logged; do not put personal data here).")
@click.pass_context
@_fail_cleanly
def erase(
    ctx: click.Context,
    tenant: str,
    actor_id: str | None,
    email: str | None,
    target_id: str | None,
    reason: str,
) -> None:
    """Erase a person's data from a tenant's events (docs/retention.md): names, emails, IPs,
    user agents and personal metadata keys read "[erased]" from then on, and the erasure is
    logged so the log still verifies."""
    given = [
        (k, v) for k, v in (("actor_id", actor_id), ("email", email), ("target_id", target_id)) if v
    ]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --actor-id, --email, --target-id")
    kind, value = given[0]
    with _service(ctx) as service:
        result = retention.erase(
            service, tenant, kind, value, reason, AdminActor.cli("trailkeeper erase")
        )
    click.echo(
        f"erasure {result.id}: {result.events} events erased, logged as "
        f"{', '.join(result.logged_as)}"
    )


@main.group("legal-holds")
def legal_holds() -> None:
    """Place, list and lift legal holds: a held tenant or subject is neither purged nor
    erased. Placing and lifting are logged in the tenant's log."""


@legal_holds.command("place")
@click.option("--tenant", required=True)
@click.option("--reason", required=True)
@click.option("--actor-id")
@click.option("--email")
@click.option("--target-id")
@click.pass_context
@_fail_cleanly
def legal_holds_place(
    ctx: click.Context,
    tenant: str,
    reason: str,
    actor_id: str | None,
    email: str | None,
    target_id: str | None,
) -> None:
    """Hold the whole tenant, or one subject (give one of --actor-id, --email, --target-id)."""
    given = [
        (k, v) for k, v in (("actor_id", actor_id), ("email", email), ("target_id", target_id)) if v
    ]
    if len(given) > 1:
        raise click.UsageError("give at most one of --actor-id, --email, --target-id")
    with _service(ctx) as service:
        by = AdminActor.cli("trailkeeper legal-holds place")
        hold = retention.place_hold(service, tenant, reason, by, given[0] if given else None)
    click.echo(hold.id)


@legal_holds.command("list")
@click.option("--tenant", required=True)
@click.pass_context
@_fail_cleanly
def legal_holds_list(ctx: click.Context, tenant: str) -> None:
    """id, created, subject (a keyed hash, or "tenant"), reason."""
    with _service(ctx) as service:
        for hold in retention.list_holds(service, tenant):
            subject = hold.subject or "tenant"
            click.echo(f"{hold.id}\t{format_ts(hold.created_at)}\t{subject}\t{hold.reason}")


@legal_holds.command("lift")
@click.option("--tenant", required=True)
@click.argument("hold_id")
@click.pass_context
@_fail_cleanly
def legal_holds_lift(ctx: click.Context, tenant: str, hold_id: str) -> None:
    """Lift a hold."""
    with _service(ctx) as service:
        retention.lift_hold(
            service, tenant, hold_id, AdminActor.cli("trailkeeper legal-holds lift")
        )
    click.echo(f"lifted {hold_id}", err=True)


# ---- verify ---------------------------------------------------------------------------------


def _read_text(value: str) -> str:
    """A literal value, or `@path` to read it from a file."""
    return Path(value[1:]).read_text() if value.startswith("@") else value


@main.command()
@click.option(
    "--key",
    "vkey",
    required=True,
    metavar="VKEY|@FILE",
    help="The log's verifier key (`name+keyid+base64`), from /v1/ledger/public-key. "
    "Pin it: do not fetch it from the server you are checking.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=_InputFile("r"),
    help="A checkpoint you kept earlier (signed note).",
)
@click.option(
    "--export",
    "export_file",
    type=_InputFile("rb"),
    help="Offline: a JSON-lines export of the whole log (trailkeeper export).",
)
@click.option("--online", "url", metavar="URL", help="Online: the trailkeeper base URL.")
@click.option(
    "--api-key",
    envvar="TRAILKEEPER_API_KEY",
    help="Online: an API key with events.read (or $TRAILKEEPER_API_KEY).",
)
@click.option(
    "--event",
    "event_ids",
    multiple=True,
    help="Online: also check the inclusion proof of this event (repeatable).",
)
@click.option(
    "--save-checkpoint",
    type=click.Path(dir_okay=False),
    help="Online: write the verified latest checkpoint here, for next time.",
)
@_fail_cleanly
def verify(
    vkey: str,
    checkpoint_file: IO[str] | None,
    export_file: IO[bytes] | None,
    url: str | None,
    api_key: str | None,
    event_ids: tuple[str, ...],
    save_checkpoint: str | None,
) -> None:
    """Check that a log was not altered, without trusting the server.

    Offline: `--export FILE --checkpoint FILE --key VKEY` recomputes the whole Merkle tree from
    the export and compares it with the signed checkpoint. Online: `--online URL --api-key KEY
    --key VKEY` fetches the latest checkpoint, proves it consistent with `--checkpoint` (if
    given), verifies the full export against it and the inclusion proof of each `--event`.
    Exits 1 and names the first event that does not match when verification fails.
    """
    from trailkeeper import verifier

    key = _read_text(vkey).strip()
    try:
        verifier.parse_vkey(key)
    except verifier.VerificationError as exc:
        raise _UsageLine(str(exc).replace("verifier key", "--key", 1)) from None
    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        raise _UsageLine("malformed --api-key: API keys are ASCII (tk_...)")
    try:
        held = verifier.parse_checkpoint(checkpoint_file.read(), key) if checkpoint_file else None
        if url:
            if not api_key:
                raise click.UsageError("--online needs --api-key (or $TRAILKEEPER_API_KEY)")
            report = _verify_online(url, api_key, key, held, event_ids, save_checkpoint)
        else:
            if export_file is None or held is None:
                raise click.UsageError("offline verification needs --export and --checkpoint")
            report = verifier.verify_export(export_file, held, workers=os.cpu_count() or 1)
    except verifier.VerificationError as exc:
        raise click.ClickException(f"NOT VERIFIED: {exc}") from None
    if not report.ok:
        raise click.ClickException(f"NOT VERIFIED: {report.message}")
    click.echo(f"verified: {report.message}")


def _verify_online(
    url: str,
    api_key: str,
    vkey: str,
    held: Any,
    event_ids: tuple[str, ...],
    save_to: str | None,
) -> Any:
    """Online verification; a server that cannot be reached or answers something else than
    trailkeeper would is one line, like every CLI failure."""
    import httpx

    try:
        return _verify_against(url, api_key, vkey, held, event_ids, save_to)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc or type(exc).__name__}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise click.ClickException(f"{url}: {exc or type(exc).__name__}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise click.ClickException(
            f"{url} does not answer like a trailkeeper server ({type(exc).__name__}: {exc})"
        ) from None


def _verify_against(
    url: str,
    api_key: str,
    vkey: str,
    held: Any,
    event_ids: tuple[str, ...],
    save_to: str | None,
) -> Any:
    import base64

    import httpx

    from trailkeeper import verifier

    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:

        def get_json(path: str, **params: Any) -> Any:
            response = client.get(path, params=params)
            if response.status_code != 200:
                raise click.ClickException(
                    f"GET {path}: HTTP {response.status_code} {_one_line(response.text[:300])}"
                )
            return response.json()

        latest_note = get_json("/v1/ledger/checkpoint")["note"]
        latest = verifier.parse_checkpoint(latest_note, vkey)
        click.echo(f"latest checkpoint: {latest.origin} size {latest.size}", err=True)
        if held is not None:
            if held.origin != latest.origin:
                raise verifier.VerificationError("the held checkpoint is from another log")
            if held.size > latest.size:
                raise verifier.VerificationError(
                    f"the log shrank from {held.size} to {latest.size} events (rolled back)"
                )
            proof = get_json("/v1/ledger/consistency", **{"from": held.size, "to": latest.size})
            verifier.verify_consistency(
                held.size,
                latest.size,
                held.root,
                latest.root,
                [base64.b64decode(h) for h in proof["proof"]],
            )
            click.echo(f"consistent with the held checkpoint of size {held.size}", err=True)
        for event_id in event_ids:
            event = get_json(f"/v1/events/{event_id}")
            proof = get_json(f"/v1/events/{event_id}/proof", size=latest.size)
            verifier.verify_inclusion(
                event["log_index"],
                latest.size,
                verifier.event_leaf_hash(event),
                [base64.b64decode(h) for h in proof["proof"]],
                latest.root,
            )
            click.echo(f"event {event_id} is included at index {event['log_index']}", err=True)
        with client.stream("GET", "/v1/export") as response:
            if response.status_code != 200:
                raise click.ClickException(f"GET /v1/export: HTTP {response.status_code}")
            report = verifier.verify_export(_ndjson_lines(response.iter_bytes()), latest)
        if report.ok and save_to:
            Path(save_to).write_text(latest_note)
        return report


def _ndjson_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a JSON-lines stream, split on LF only. httpx's `iter_lines` also splits on
    U+2028, U+0085 and the other separators `str.splitlines` knows, which JSON leaves
    unescaped inside strings: an event holding one would be cut in two and reported as
    tampered."""
    pending: list[bytes] = []
    for chunk in chunks:
        first, *lines = chunk.split(b"\n")
        pending.append(first)
        if not lines:
            continue
        yield b"".join(pending)
        yield from lines[:-1]
        pending = [lines[-1]]
    tail = b"".join(pending)
    if tail:
        yield tail


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---- streams (docs/streams.md) --------------------------------------------------------------

_TENANT_OPTION = click.option("--tenant", default="default", show_default=True)


@main.group()
def streams() -> None:
    """Push a tenant's events to a webhook, Splunk HEC, Datadog or NATS (serve delivers)."""


@streams.command("create")
@_TENANT_OPTION
@click.option("--name", required=True, help="What the stream is for, e.g. 'siem'.")
@click.option("--type", "kind", required=True, type=click.Choice(DESTINATIONS))
@click.option("--url", help="Webhook URL, HEC base URL, Datadog intake URL or NATS server URL.")
@click.option("--token", help="splunk_hec: the HEC token; nats: an auth token.")
@click.option("--api-key", help="datadog: the API key.")
@click.option("--subject", help="nats: the subject to publish to.")
@click.option("--index", help="splunk_hec: the index.")
@click.option("--service-name", "service_name", help="datadog: the service (default trailkeeper).")
@click.option("--tags", help="datadog: ddtags to add, e.g. env:prod.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD=VALUE",
    help=f"Only matching events (repeatable): {', '.join(STREAM_FILTERS)}.",
)
@click.option("--start", type=click.Choice(["beginning", "end"]), default="beginning")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH, show_default=True)
@click.option("--batch-wait-ms", type=int, default=DEFAULT_BATCH_WAIT_MS, show_default=True)
@click.pass_context
@_fail_cleanly
def streams_create(
    ctx: click.Context,
    /,
    tenant: str,
    name: str,
    kind: str,
    filters: tuple[str, ...],
    start: str,
    batch_size: int,
    batch_wait_ms: int,
    **destination: str | None,
) -> None:
    """Create a stream and print it as JSON (a webhook's `secret` is shown this once)."""
    renamed = {"api_key": destination.pop("api_key"), "service": destination.pop("service_name")}
    given = {k: v for k, v in {**destination, **renamed}.items() if v is not None}
    wanted: dict[str, Any] = {
        "name": name,
        "destination": {"type": kind, **given},
        "filters": dict(_filter_pair(f) for f in filters),
        "start": start,
        "batch_size": batch_size,
        "batch_wait_ms": batch_wait_ms,
    }
    try:
        data = msgspec.convert(wanted, StreamIn)
    except msgspec.ValidationError as exc:
        raise _UsageLine(str(exc).replace("$.destination.", "--").replace("$.", "--")) from None
    with _service(ctx) as service:
        admin = StreamAdmin(service.store)
        stream, secret = admin.create(tenant, data)
        _echo_json(admin.view(stream, secret))


def _filter_pair(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or field not in STREAM_FILTERS:
        raise _UsageLine(
            f"--filter takes FIELD=VALUE with FIELD one of {', '.join(STREAM_FILTERS)}"
        )
    return field, value


def _echo_json(value: Any) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value)).decode())


@streams.command("list")
@click.option("--tenant", help="Only this tenant's streams.")
@click.pass_context
@_fail_cleanly
def streams_list(ctx: click.Context, tenant: str | None) -> None:
    """List streams with their state and lag."""
    with _service(ctx) as service:
        admin = StreamAdmin(service.store)
        click.echo(
            f"{'STREAM ID':<21} {'TENANT':<16} {'NAME':<16} {'TYPE':<11} {'STATE':<8} "
            f"{'POSITION':>9} {'LAG':>8} LAST ERROR"
        )
        for stream in admin.list(tenant):
            status = admin.status(stream)
            click.echo(
                f"{stream.id:<21} {stream.tenant:<16} {stream.name:<16} {stream.destination:<11} "
                f"{status.state:<8} {stream.position:>9} {status.lag_events:>8} "
                f"{_one_line(status.last_error or '-')[:60]}"
            )


@streams.command("show")
@click.argument("stream_id")
@_TENANT_OPTION
@click.pass_context
@_fail_cleanly
def streams_show(ctx: click.Context, stream_id: str, tenant: str) -> None:
    """Print a stream and its status as JSON (credentials are never shown)."""
    with _service(ctx) as service:
        admin = StreamAdmin(service.store)
        _echo_json(admin.view(admin.get(tenant, stream_id)))


@streams.command("pause")
@click.argument("stream_id")
@_TENANT_OPTION
@click.pass_context
@_fail_cleanly
def streams_pause(ctx: click.Context, stream_id: str, tenant: str) -> None:
    """Stop delivering (after the batch in flight); the position stays."""
    with _service(ctx) as service:
        StreamAdmin(service.store).set_paused(tenant, stream_id, True)
    click.echo(f"paused {stream_id}", err=True)


@streams.command("resume")
@click.argument("stream_id")
@_TENANT_OPTION
@click.pass_context
@_fail_cleanly
def streams_resume(ctx: click.Context, stream_id: str, tenant: str) -> None:
    """Deliver again from the stream's position."""
    with _service(ctx) as service:
        StreamAdmin(service.store).set_paused(tenant, stream_id, False)
    click.echo(f"resumed {stream_id}", err=True)


@streams.command("delete")
@click.argument("stream_id")
@_TENANT_OPTION
@click.pass_context
@_fail_cleanly
def streams_delete(ctx: click.Context, stream_id: str, tenant: str) -> None:
    """Delete a stream (a batch in flight may still arrive)."""
    with _service(ctx) as service:
        StreamAdmin(service.store).delete(tenant, stream_id)
    click.echo(f"deleted {stream_id}", err=True)


@streams.command("replay")
@click.argument("stream_id")
@_TENANT_OPTION
@click.option("--log-index", type=click.IntRange(min=0), help="Deliver again from this index.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="Deliver again from the first event received at or after this time.",
)
@click.pass_context
@_fail_cleanly
def streams_replay(
    ctx: click.Context,
    stream_id: str,
    tenant: str,
    log_index: int | None,
    since: datetime | None,
) -> None:
    """Move a stream's position back (never forward: a stream never skips events)."""
    if (log_index is None) == (since is None):
        raise _UsageLine("give exactly one of --log-index or --since")
    with _service(ctx) as service:
        admin = StreamAdmin(service.store)
        stream = admin.replay(tenant, stream_id, log_index=log_index, since=_as_utc(since))
    click.echo(f"{stream_id} delivers again after log index {stream.position}", err=True)
