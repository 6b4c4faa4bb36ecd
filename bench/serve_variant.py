"""trailkeeper's app on uvicorn, as `serve` runs it, with the ledger on or off: for measuring
what the ledger costs HTTP batch ingest. Not a product entry point (the ledger is always on).

    python -m bench.serve_variant PORT DATABASE_URL [--no-ledger]
"""

from __future__ import annotations

import sys

import uvicorn

from trailkeeper.api.app import create_app
from trailkeeper.config import load_settings
from trailkeeper.service import AuditService
from trailkeeper.store import open_store

if __name__ == "__main__":
    port, url = int(sys.argv[1]), sys.argv[2]
    settings = load_settings({}, database_url=url, rate_limit_per_second=0)
    service = AuditService(
        open_store(url, ledger="--no-ledger" not in sys.argv),
        credential_cache_seconds=settings.credential_cache_seconds,
    )
    uvicorn.run(
        create_app(service, settings, owns_service=True),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
