-- trailkeeper schema v1 (SQLite). Timestamps are integer milliseconds since the epoch, UTC.
-- Every key starts with the tenant, so one tenant's rows are contiguous in each index.
-- `seq` is the rowid: SQLite appends it to every secondary index for free, which gives the
-- keyset order (occurred_at DESC, seq DESC) without a wider index.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    id            TEXT NOT NULL,
    occurred_at   INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    action        TEXT NOT NULL,
    type          TEXT,
    actor_id      TEXT NOT NULL,
    actor_name    TEXT,
    actor_email   TEXT,
    actor_type    TEXT,
    actor_staff   INTEGER,
    actor_status  TEXT,
    target_type   TEXT,
    target_id     TEXT,
    target_name   TEXT,
    target_email  TEXT,
    source        TEXT,
    ip            TEXT,
    user_agent    TEXT,
    metadata      TEXT NOT NULL,
    request_hash  BLOB NOT NULL
);
CREATE UNIQUE INDEX events_by_id ON events (tenant, id);
CREATE INDEX events_by_time ON events (tenant, occurred_at);
CREATE INDEX events_by_actor ON events (tenant, actor_id, occurred_at);
CREATE INDEX events_by_action ON events (tenant, action, occurred_at);
CREATE INDEX events_by_type ON events (tenant, type, occurred_at);
CREATE INDEX events_by_target_type ON events (tenant, target_type, occurred_at);
CREATE INDEX events_by_target_id ON events (tenant, target_id, occurred_at);
CREATE INDEX events_by_source ON events (tenant, source, occurred_at);
