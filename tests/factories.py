"""Realistic, varied events for tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

ACTIONS = ["created", "updated", "deleted", "user.login"]
TYPES = ["user:role-changed", "buyer:created", None]
TARGET_TYPES = ["buyer", "transaction", None]
SOURCES = ["api", "dashboard", None]


def event_payload(n: int, rng: random.Random | None = None, **overrides: Any) -> dict[str, Any]:
    rng = rng or random.Random(n)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    target_type = rng.choice(TARGET_TYPES)
    payload: dict[str, Any] = {
        "id": f"evt-{n:05d}",
        "action": rng.choice(ACTIONS),
        "actor": {
            "id": f"user-{rng.randint(1, 4)}",
            "name": "Jane Doe",
            "email": "jane@example.com",
            "staff": rng.random() < 0.3,
        },
        # Deliberate ties: several events share one millisecond.
        "occurred_at": (base + timedelta(seconds=rng.randint(0, 40))).isoformat(),
        "metadata": {"n": n, "tags": ["a", "b"], "nested": {"ok": True}},
    }
    event_type = rng.choice(TYPES)
    if event_type:
        payload["type"] = event_type
    if target_type:
        payload["target"] = {"type": target_type, "id": f"{target_type}-{rng.randint(1, 3)}"}
    source = rng.choice(SOURCES)
    if source:
        payload["source"] = source
    payload.update(overrides)
    return payload
