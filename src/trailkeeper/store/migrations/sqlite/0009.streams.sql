-- depends: 0008.outcome
-- Streams (docs/streams.md): a destination, filters and a position (the log index of the last
-- event the destination acknowledged; -1 before the first) in one tenant's log.
CREATE TABLE streams (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    name             TEXT NOT NULL,
    destination      TEXT NOT NULL,
    config           TEXT NOT NULL,
    filters          TEXT NOT NULL,
    position         INTEGER NOT NULL,
    batch_size       INTEGER NOT NULL,
    batch_wait_ms    INTEGER NOT NULL,
    paused           INTEGER NOT NULL DEFAULT 0,
    failing          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    last_success_at  INTEGER,
    last_error       TEXT,
    last_error_at    INTEGER,
    deliveries       INTEGER NOT NULL DEFAULT 0,
    delivered_events INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    purged           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX streams_by_tenant ON streams (tenant, created_at);
