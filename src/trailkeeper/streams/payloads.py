"""Each destination's wire format, made from stored Events (pure: no I/O).

Every destination carries the event as trailkeeper's own public document (the native API's
event object), so a SIEM sees the same fields as `GET /v1/events` and exports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from trailkeeper.formats import event_document
from trailkeeper.model import Event, format_ts
from trailkeeper.streams.model import SECRET_PREFIX

_encode = msgspec.json.Encoder().encode
WEBHOOK_TYPE = "audit_events.batch"
SPLUNK_PATH = "/services/collector/event"
DATADOG_PATH = "/api/v2/logs"
DATADOG_SOURCE = "trailkeeper"


def document(event: Event) -> dict[str, Any]:
    """The event's public document, as the native API returns it."""
    return event_document(event)


def webhook_id(stream_id: str, events: Sequence[Event]) -> str:
    """The same for every attempt at the same batch (Standard Webhooks' idempotency key):
    stream and the log indexes it spans."""
    return f"{stream_id}_{events[0].log_index}-{events[-1].log_index}"


def webhook_body(stream_id: str, tenant: str, events: Sequence[Event], now: datetime) -> bytes:
    """`{"type", "timestamp", "data"}`, the envelope Standard Webhooks recommends."""
    return _encode(
        {
            "type": WEBHOOK_TYPE,
            "timestamp": format_ts(now),
            "data": {
                "stream": stream_id,
                "tenant": tenant,
                "events": [document(e) for e in events],
            },
        }
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's bytes
    (the base64 after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_signatures(config: dict[str, Any], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: the current secret's signature, and during a
    rotation's overlap window the previous secret's too, space-separated."""
    signatures = [sign(config["secret"], msg_id, timestamp, body)]
    previous, until = config.get("previous_secret"), config.get("previous_until")
    if previous and until is not None and timestamp < int(until):
        signatures.append(sign(previous, msg_id, timestamp, body))
    return " ".join(signatures)


def splunk_body(config: dict[str, Any], events: Sequence[Event]) -> bytes:
    """HEC's batch form: event objects concatenated, each with its time in epoch seconds."""
    host = config.get("host") or socket.gethostname()
    parts = []
    for event in events:
        item: dict[str, Any] = {
            "time": round(event.occurred_at.timestamp(), 3),
            "host": host,
            "source": config.get("source") or f"trailkeeper:{event.tenant}",
            "sourcetype": config.get("sourcetype") or "trailkeeper:audit",
        }
        if config.get("index"):
            item["index"] = config["index"]
        item["event"] = document(event)
        parts.append(_encode(item))
    return b"".join(parts)


def datadog_body(config: dict[str, Any], events: Sequence[Event]) -> bytes:
    """Logs intake v2: a JSON array of logs; the event's document is the message (JSON, which
    Datadog parses into attributes)."""
    host = config.get("hostname") or socket.gethostname()
    logs = []
    for event in events:
        tags = f"tenant:{event.tenant},action:{event.action}"
        if config.get("tags"):
            tags = f"{config['tags']},{tags}"
        logs.append(
            {
                "ddsource": DATADOG_SOURCE,
                "ddtags": tags,
                "hostname": host,
                "message": _encode(document(event)).decode(),
                "service": config.get("service") or "trailkeeper",
            }
        )
    return _encode(logs)


def nats_message(event: Event) -> tuple[bytes, dict[str, str]]:
    """One event's payload and headers: `Nats-Msg-Id` (tenant-qualified event id) lets
    JetStream drop a message it already has within its duplicate window."""
    return _encode(document(event)), {"Nats-Msg-Id": f"{event.tenant}/{event.id}"}
