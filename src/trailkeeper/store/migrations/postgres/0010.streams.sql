-- depends: 0009.outcome
-- Streams (docs/streams.md): a destination, filters and a position (the log index of the last
-- event the destination acknowledged; -1 before the first) in one tenant's log.
CREATE TABLE streams (
    id               text PRIMARY KEY,
    tenant           text NOT NULL,
    name             text NOT NULL,
    destination      text NOT NULL,
    config           text NOT NULL,
    filters          text NOT NULL,
    position         bigint NOT NULL,
    batch_size       integer NOT NULL,
    batch_wait_ms    integer NOT NULL,
    paused           boolean NOT NULL DEFAULT false,
    failing          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    deliveries       bigint NOT NULL DEFAULT 0,
    delivered_events bigint NOT NULL DEFAULT 0,
    failures         bigint NOT NULL DEFAULT 0,
    purged           bigint NOT NULL DEFAULT 0
);
CREATE INDEX streams_by_tenant ON streams (tenant, created_at);
