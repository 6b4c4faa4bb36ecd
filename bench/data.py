"""Benchmark data: varied, realistic events (~500 bytes as JSON), deterministic."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from trailkeeper.model import EventIn

START = datetime(2025, 1, 1, tzinfo=UTC)


def payload(n: int, rng: random.Random) -> dict[str, Any]:
    target_type = rng.choice(["buyer", "transaction", "payment-method", "user"])
    return {
        "id": f"bench-{n:08d}",
        "action": rng.choice(["created", "updated", "deleted", "captured"]),
        "type": rng.choice(["user:role-changed", "buyer:created", "transaction:captured"]),
        "occurred_at": (START + timedelta(seconds=n * 3 + rng.randint(0, 2))).isoformat(),
        "actor": {
            "id": f"user-{rng.randint(1, 200)}",
            "name": "Jane Doe",
            "email": "jane@example.com",
            "type": "user",
            "staff": rng.random() < 0.1,
        },
        "target": {
            "type": target_type,
            "id": f"{target_type}-{rng.randint(1, 50_000)}",
            "name": "Samuel J",
        },
        "source": rng.choice(["api", "dashboard", "cli"]),
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
        "metadata": {
            "plan": "pro",
            "ticket": f"OPS-{n % 9999}",
            "tags": ["a", "b"],
            "note": "changed from the admin dashboard by a teammate",
        },
    }


def batches(count: int, size: int, offset: int = 0) -> list[list[EventIn]]:
    return list(iter_batches(count, size, offset))


def with_amounts(data: list[list[EventIn]]) -> list[list[EventIn]]:
    """The same events, each with a float `amount` in its metadata (a price), a third of them
    whole numbers (18.0): numbers the Merkle leaf must write as RFC 8785 does, which
    msgspec's encoding alone does not for the whole ones."""
    return [
        [
            msgspec.structs.replace(
                event, metadata={**event.metadata, "amount": 12.5 + n % 1000 + 0.25 * (n % 3)}
            )
            for n, event in enumerate(batch)
        ]
        for batch in data
    ]


def iter_batches(count: int, size: int, offset: int = 0) -> Iterator[list[EventIn]]:
    """`batches` made as they are consumed: loading 10M events must not hold them all."""
    rng = random.Random(offset)
    for start in range(0, count, size):
        yield [
            msgspec.convert(payload(offset + n, rng), EventIn)
            for n in range(start, min(start + size, count))
        ]


def json_batches(count: int, size: int, offset: int = 0) -> list[bytes]:
    """Request bodies for POST /v1/events/batch."""
    rng = random.Random(offset)
    encoder = msgspec.json.Encoder()
    return [
        encoder.encode(
            {"events": [payload(offset + n, rng) for n in range(i, min(i + size, count))]}
        )
        for i in range(0, count, size)
    ]
