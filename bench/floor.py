"""Framework floor: the same 100-event JSON page from a bare endpoint of the same framework
and server, so page latency can be compared with what the stack itself costs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import msgspec
from litestar import Litestar, get

from bench.data import batches
from trailkeeper.api.native import EventView, to_view
from trailkeeper.ledger import event_leaves
from trailkeeper.model import utc_now_ms
from trailkeeper.validation import normalize_event


def _page_of_bench_events() -> list[EventView]:
    """100 events of the kind the bench stores and pages through, as the API shows them, so
    the floor encodes and sends the same amount of JSON as a real page (not a smaller one)."""
    received = utc_now_ms()
    views = []
    for index, given in enumerate(batches(100, 100)[0]):
        event = normalize_event("acme", given, received).event
        event = msgspec.structs.replace(
            event, log_index=index, leaf_hash=event_leaves([event], index)[0], seq=index
        )
        views.append(to_view(event))
    return views


PAGE = {
    "items": _page_of_bench_events(),
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
