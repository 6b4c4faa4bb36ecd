"""Framework floor: the same 100-event JSON page from a bare endpoint of the same framework
and server, so page latency can be compared with what the stack itself costs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from litestar import Litestar, get

from trailkeeper.formats import EventView
from trailkeeper.model import Actor, Target

PAGE = {
    "items": [
        EventView(
            id=f"01a20617-62cb-7740-a162-{n:012d}",
            tenant="acme",
            occurred_at="2024-05-01T10:00:00.000Z",
            received_at="2024-05-01T10:00:00.001Z",
            action="created",
            type="user:role-changed",
            actor=Actor(id=f"user-{n % 20}", name="Jane Doe", email="jane@example.com"),
            target=Target(type="buyer", id=f"buyer-{n}"),
            source="api",
            context=None,
            metadata={"n": n, "plan": "pro", "tags": ["a", "b"]},
            log_index=n,
            leaf_hash="myDWxSiZkSjk44w4JCnEIgvMl/dfTNcpmh5Kj2V/jCU=",
        )
        for n in range(100)
    ],
    "limit": 100,
    "next_cursor": "lAEAzwAAAaIGC2sHARhQI9H4ZVJQ5Iq-K3JcBco",
    "previous_cursor": None,
    "built": datetime.now(UTC).isoformat(),
}


@get("/page", sync_to_thread=True)
def page() -> dict[str, object]:
    return PAGE


app = Litestar([page], openapi_config=None)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
