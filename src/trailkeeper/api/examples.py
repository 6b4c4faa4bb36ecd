"""Example values for the OpenAPI document, taken from a real exchange with the server.

The dialects derive their examples from these with their own converters, so an example shows
exactly what that dialect would send; tests check every example against its schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from trailkeeper.formats import csv_chunks, event_document
from trailkeeper.ledger import canonical_event
from trailkeeper.model import Event, EventIn
from trailkeeper.validation import normalize_event
from trailkeeper.verifier import leaf_hash

EVENT_IN: dict[str, Any] = {
    "id": "evt_2024_0001",
    "action": "invoice.paid",
    "type": "billing",
    "occurred_at": "2024-05-01T10:00:00Z",
    "actor": {"id": "user_42", "name": "Ada Lovelace", "email": "ada@example.com", "type": "user"},
    "target": {"type": "invoice", "id": "inv_1001", "name": "Invoice 1001"},
    "source": "billing-service",
    "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
    "metadata": {"amount": 4200, "currency": "EUR"},
}
MINIMAL_EVENT_IN: dict[str, Any] = {"action": "user.login", "actor": {"id": "user_42"}}


def _stored(given: dict[str, Any]) -> Event:
    """The example input as tenant `acme`'s first event, stored as the server stores it."""
    received = datetime(2024, 5, 1, 10, 0, 0, 184_000, tzinfo=UTC)
    event = normalize_event("acme", msgspec.convert(given, EventIn), received).event
    event = msgspec.structs.replace(event, log_index=0)
    return msgspec.structs.replace(event, leaf_hash=leaf_hash(canonical_event(event)))


EXAMPLE_EVENT = _stored(EVENT_IN)
EVENT: dict[str, Any] = event_document(EXAMPLE_EVENT)
CURSOR = "lAEAzwAAAY8zmMEAA5dIlG2V7AcknNe8ciEU86A"
CSV = b"".join(csv_chunks([EXAMPLE_EVENT])).decode("utf-8")
NDJSON = msgspec.json.encode(EVENT).decode() + "\n"

CHECKPOINT_NOTE = (
    "trailkeeper.local/acme\n3\nfSf9efhGjXj5njyuBUBvYkMREaiG/nv0IP2TBA7xBhg=\n"
    "time 2024-05-01T10:05:00.000Z\n\n"
    "— trailkeeper.local 1ktYuPKu/3w7EQTEQkqZaWKYvZlkMGfEf1pMzIqka9EPYtWqjGr9eclgmSmDY9sZzN3c"
    "HegC9o97eZHJJ5tRGRexkg0=\n"
)
OLDER_CHECKPOINT_NOTE = (
    "trailkeeper.local/acme\n1\nUZshiV2Rx8x8Ngfl6WpcXYEjPTULMVKhUXlPiq9KMcI=\n"
    "time 2024-05-01T10:01:00.000Z\n\n"
    "— trailkeeper.local 1ktYuC7u8A9jt1kz3/spibtguLtPXXnc7d+P7uVD85MFSnhSG/1UWfHJU04vwXbiuQWP"
    "dyFtpRRyyyufxn64nLiBUAI=\n"
)
PROOF = [
    "p9VQzvEy+WKAJbZ9393uoD9lILO6kr8s0a75r4z5qFY=",
    "TjANB6xg6bt+4TD1EQJoGs+1r8KGUWsR7bGtP4YZ9ZA=",
]
PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQAhp0ezN0nZP2vatCDWIdn+FCQzvII\n"
    "RV2Uoy6YfnmKMnnqE8vmuaTiiml6C8kGsRnemrux5zhqOQYCgGXztq1pFasB64Tx\n"
    "+hsPYGHqfsa9vZmGYMo8x+ltlRABT/fvZE9mLF77PLLa0XVcsirSsMo+h1gMr2XP\n"
    "BEiaAg4IiasoD468TE0=\n"
    "-----END PUBLIC KEY-----\n"
)
