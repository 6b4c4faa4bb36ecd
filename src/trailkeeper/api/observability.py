"""Prometheus metrics and one structured access-log line per request, as one ASGI wrapper.

The wrapper sits around the whole Litestar app (not per route), so unmatched paths, 405s and
bodies refused for size are counted and logged too. Handlers add what only they know (the
caller's tenant and key id, how many events a batch stored) to the request's `RequestInfo`
through `current_request()`; the wrapper records everything once the response is sent.

Multi-process: with `PROMETHEUS_MULTIPROC_DIR` set (before the process starts), prometheus-client
keeps values in files there and `/metrics` sums every process's files, so any worker answers for
all of them (docs/operations.md).
"""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.utils import normalize_path
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from trailkeeper.service import AuditService
from trailkeeper.streams.manage import StreamAdmin

access_log = logging.getLogger("trailkeeper.access")

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
OTHER_TENANTS = "_other"
UNMATCHED_ROUTE = "unmatched"
POOL_REFRESH_SECONDS = 1.0
# Streams with their own `stream` label on the stream gauges (the oldest, by tenant): a label
# per stream without bound would let stream count blow up Prometheus.
MAX_STREAM_LABELS = 100


@dataclass
class RequestInfo:
    """What the access line and the metrics say about one request."""

    request_id: str
    method: str
    path: str
    tenant: str | None = None
    key_id: str | None = None
    ingested: int | None = None  # events a write stored new (None: not a write)
    batch_size: int | None = None


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "trailkeeper_request", default=None
)


def current_request() -> RequestInfo | None:
    """The request being served (worker threads inherit it: anyio copies the context)."""
    return _current.get()


def note_caller(tenant: str, key_id: str) -> None:
    """Record who is calling, for the access line (the key id only, never its secret)."""
    info = _current.get()
    if info is not None:
        info.tenant, info.key_id = tenant, key_id


def note_ingested(batch_size: int, created: int) -> None:
    """Record what a write stored, for the per-tenant and batch-size metrics."""
    info = _current.get()
    if info is not None:
        info.batch_size, info.ingested = batch_size, created


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's `X-Request-ID` when it is short and plain, else a fresh one: an id is
    logged and echoed, so it must not carry newlines, quotes or kilobytes."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class Metrics:
    """The metric families, in a registry of their own (one per app, so tests start at 0)."""

    def __init__(self, max_tenants: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_tenants = max_tenants
        self._tenants: set[str] = set()
        reg = self.registry
        self.requests = Counter(
            "trailkeeper_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "trailkeeper_http_request_duration_seconds",
            "Time from request to the last byte of the response, by route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=reg,
        )
        self.ingested = Counter(
            "trailkeeper_events_ingested",
            "Events stored new (retried duplicates not counted), by tenant (bounded: "
            "TRAILKEEPER_METRICS_MAX_TENANTS).",
            ["tenant"],
            registry=reg,
        )
        self.batch_size = Histogram(
            "trailkeeper_ingest_batch_size",
            "Events per accepted write request.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
            registry=reg,
        )
        self.pool = Gauge(
            "trailkeeper_db_pool_connections",
            "PostgreSQL pool connections per state (size: open, available: idle), all "
            "processes summed.",
            ["state"],
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.pool_waiting = Gauge(
            "trailkeeper_db_pool_requests_waiting",
            "Requests waiting for a PostgreSQL connection now, all processes summed.",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.pool_wait = Counter(
            "trailkeeper_db_pool_wait_seconds",
            "Time requests spent waiting for a PostgreSQL connection.",
            registry=reg,
        )
        self.pool_timeouts = Counter(
            "trailkeeper_db_pool_errors",
            "Connection requests that failed (timed out or errored).",
            registry=reg,
        )
        self.writer_queue = Gauge(
            "trailkeeper_db_writer_queue",
            "SQLite: write batches waiting for the write lock now, all processes summed.",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self._pool_seen: dict[str, int] = {}
        self._pool_read_at = 0.0
        stream_gauge = {
            "labelnames": ["stream", "tenant"],
            "multiprocess_mode": "livemostrecent",
            "registry": reg,
        }
        self.stream_lag_events = Gauge(
            "trailkeeper_stream_lag_events",
            "Events stored after a stream's position (not yet delivered), read from the "
            f"database at scrape time; the first {MAX_STREAM_LABELS} streams.",
            **stream_gauge,  # type: ignore[arg-type]
        )
        self.stream_lag_seconds = Gauge(
            "trailkeeper_stream_lag_seconds",
            "Age of the oldest event a stream has not delivered (0: caught up).",
            **stream_gauge,  # type: ignore[arg-type]
        )
        self.stream_deliveries = Gauge(
            "trailkeeper_stream_deliveries",
            "Batches a stream's destination acknowledged, since the stream was made.",
            **stream_gauge,  # type: ignore[arg-type]
        )
        self.stream_failures = Gauge(
            "trailkeeper_stream_failures",
            "Failed delivery attempts of a stream, since the stream was made.",
            **stream_gauge,  # type: ignore[arg-type]
        )
        self.streams: StreamAdmin | None = None

    def refresh_streams(self) -> None:
        """Copy each stream's status from the database (any process can: it is all there)."""
        if self.streams is None:
            return
        gauges = (
            self.stream_lag_events,
            self.stream_lag_seconds,
            self.stream_deliveries,
            self.stream_failures,
        )
        for gauge in gauges:
            gauge.clear()
        for stream in self.streams.list(None)[:MAX_STREAM_LABELS]:
            status = self.streams.status(stream)
            labels = (stream.id, stream.tenant)
            self.stream_lag_events.labels(*labels).set(status.lag_events)
            self.stream_lag_seconds.labels(*labels).set(status.lag_seconds)
            self.stream_deliveries.labels(*labels).set(status.deliveries)
            self.stream_failures.labels(*labels).set(status.failures)

    def tenant_label(self, tenant: str) -> str:
        """The tenant itself for the first `max_tenants` seen, then `_other`: a label per
        tenant without bound would let tenant count blow up Prometheus."""
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.max_tenants:
            self._tenants.add(tenant)
            return tenant
        return OTHER_TENANTS

    def observe(self, info: RequestInfo, route: str, status: int, seconds: float) -> None:
        self.requests.labels(info.method, route, str(status)).inc()
        self.latency.labels(info.method, route).observe(seconds)
        if info.ingested is not None and info.tenant is not None and status < 400:
            self.ingested.labels(self.tenant_label(info.tenant)).inc(info.ingested)
            if info.batch_size is not None:
                self.batch_size.observe(info.batch_size)

    def refresh_pool(self, service: AuditService, *, force: bool = False) -> None:
        """Copy the pool's figures into the gauges, at most once a second (they are read on
        the request path, and each worker must update its own)."""
        now = time.monotonic()
        if not force and now - self._pool_read_at < POOL_REFRESH_SECONDS:
            return
        self._pool_read_at = now
        stats = service.database_stats()
        if "writer_queue" in stats:
            self.writer_queue.set(stats["writer_queue"])
        if "pool_size" not in stats:
            return
        self.pool.labels("size").set(stats.get("pool_size", 0))
        self.pool.labels("available").set(stats.get("pool_available", 0))
        self.pool_waiting.set(stats.get("requests_waiting", 0))
        self.pool_wait.inc(self._delta(stats, "requests_wait_ms") / 1000)
        self.pool_timeouts.inc(self._delta(stats, "requests_errors"))

    def _delta(self, stats: dict[str, int], name: str) -> int:
        """Growth of a cumulative pool counter since the last read."""
        value = stats.get(name, 0)
        delta = max(0, value - self._pool_seen.get(name, 0))
        self._pool_seen[name] = value
        return delta

    def exposition(self) -> bytes:
        """The text format; in multi-process mode, every process's values summed."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


Scope = dict[str, Any]
Message = dict[str, Any]


class Observability:
    """ASGI wrapper: request id, metrics, access line; serves `/metrics` itself."""

    def __init__(
        self,
        app: Any,
        service: AuditService,
        metrics: Metrics,
        metrics_token: str,
        router: Any = None,
    ) -> None:
        self.app = app
        self.router = router
        self.service = service
        self.metrics = metrics
        self.metrics_token = metrics_token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics":
            await self._serve_metrics(scope, send)
            return
        info = RequestInfo(request_id_from(scope["headers"]), scope["method"], scope["path"])
        token = _current.set(info)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", info.request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("path_template") or self._template(scope, status)
            self.metrics.observe(info, route, status, seconds)
            self.metrics.refresh_pool(self.service)
            _log_access(info, route, status, seconds)
            _current.reset(token)

    def _template(self, scope: Scope, status: int) -> str:
        """The route of a request Litestar did not route: a 405's path is served by a route
        (another method), so it is labelled with that route's template; else `unmatched`."""
        if status != 405 or self.router is None:
            return UNMATCHED_ROUTE
        path = normalize_path(scope["path"])
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            try:
                template: str = self.router.handle_routing(path=path, method=method)[4]
            except (NotFoundException, MethodNotAllowedException):
                continue
            return template
        return UNMATCHED_ROUTE

    async def _serve_metrics(self, scope: Scope, send: Any) -> None:
        if not self.metrics_token:
            await _send_error(send, 404, "not_found", "metrics are off (set a metrics token)")
            return
        if not _bearer_matches(scope["headers"], self.metrics_token):
            await _send_error(send, 401, "unauthenticated", "metrics need the metrics token")
            return
        self.metrics.refresh_pool(self.service, force=True)
        self.metrics.refresh_streams()
        body = self.metrics.exposition()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _bearer_matches(headers: list[tuple[bytes, bytes]], token: str) -> bool:
    """`Authorization: Bearer <token>`, the scheme in any case (RFC 9110 11.1), as API keys."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, given = value.strip().partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(
                given.strip(), token.encode()
            )
    return False


async def _send_error(send: Any, status: int, code: str, message: str) -> None:
    body = msgspec.json.encode(
        {"error": {"code": code, "message": message, "status": status, "details": []}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _log_access(info: RequestInfo, route: str, status: int, seconds: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    duration_ms = round(seconds * 1000, 2)
    access_log.info(
        "%s %s %d %.1fms",
        info.method,
        info.path,
        status,
        duration_ms,
        extra={
            "fields": {
                "request_id": info.request_id,
                "method": info.method,
                "path": info.path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "tenant": info.tenant,
                "key_id": info.key_id,
            }
        },
    )


# ---- log formatting -------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id when the record
    was made while serving a request, the record's `fields`, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        info = _current.get()
        if info is not None:
            entry["request_id"] = info.request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Characters a text log line must not carry raw: a newline would start a forged line (a
# request path is decoded, so `%0A` in a URL is one), a terminal escape would rewrite the
# screen of whoever tails the log.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """Readable lines for development, with the request id when there is one. Every field
    is on one line with control characters escaped (JSON escapes them by itself); a
    traceback follows on lines indented by four spaces, so no line of it can pass for a
    record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(
            {**record.__dict__, "msg": escape_controls(record.getMessage()), "args": None}
        )
        safe.exc_text = None
        line = super().format(safe)
        info = _current.get()
        fields = getattr(record, "fields", {})
        extra = " ".join(
            f"{name}={escape_controls(str(fields[name]))}"
            for name in ("tenant", "key_id")
            if fields.get(name)
        )
        if info is not None:
            extra = f"request_id={info.request_id} {extra}".rstrip()
        if extra:
            first, newline, rest = line.partition("\n")
            line = f"{first} [{extra}]{newline}{rest}"
        return line

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join("    " + escape_controls(part) for part in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + escape_controls(part) for part in stack_info.splitlines())


def configure_logging(level: str, log_format: str) -> None:
    """Route every logger (uvicorn's too) through one handler on stderr in `log_format`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("yoyo").setLevel(logging.WARNING)


def process_exited() -> None:
    """In multi-process mode, drop this process's live gauges (pool, queue) from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def instrument(app: Any, service: AuditService, max_tenants: int, metrics_token: str) -> None:
    """Wrap `app`'s request handling (a Litestar app: its routing and error rendering stay
    inside) with the observability wrapper."""
    metrics = Metrics(max_tenants)
    metrics.streams = app.state.get("streams")
    app.state.metrics = metrics
    app.asgi_handler = Observability(
        app.asgi_handler, service, metrics, metrics_token, router=app.asgi_router
    )
