-- trailkeeper schema v1 (PostgreSQL).
-- Every primary and unique key starts with `tenant`, so `events` can be distributed by tenant
-- (Citus: SELECT create_distributed_table('events', 'tenant'); tenants and api_keys become
-- reference tables) without a redesign. See docs/decisions.md for time partitioning.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant       text NOT NULL REFERENCES tenants (id),
    name         text NOT NULL,
    scopes       text NOT NULL,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);

CREATE TABLE settings (
    name   text PRIMARY KEY,
    value  text NOT NULL
);

CREATE SEQUENCE events_seq AS bigint;

CREATE TABLE events (
    tenant        text NOT NULL,
    seq           bigint NOT NULL DEFAULT nextval('events_seq'),
    id            text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    action        text NOT NULL,
    type          text,
    actor_id      text NOT NULL,
    actor_name    text,
    actor_email   text,
    actor_type    text,
    actor_staff   boolean,
    actor_status  text,
    target_type   text,
    target_id     text,
    target_name   text,
    target_email  text,
    source        text,
    ip            text,
    user_agent    text,
    metadata      text NOT NULL,
    request_hash  bytea NOT NULL,
    PRIMARY KEY (tenant, seq)
);
ALTER SEQUENCE events_seq OWNED BY events.seq;
CREATE UNIQUE INDEX events_by_id ON events (tenant, id);
CREATE INDEX events_by_time ON events (tenant, occurred_at, seq);
CREATE INDEX events_by_actor ON events (tenant, actor_id, occurred_at, seq);
CREATE INDEX events_by_action ON events (tenant, action, occurred_at, seq);
CREATE INDEX events_by_type ON events (tenant, type, occurred_at, seq);
CREATE INDEX events_by_target_type ON events (tenant, target_type, occurred_at, seq);
CREATE INDEX events_by_target_id ON events (tenant, target_id, occurred_at, seq);
CREATE INDEX events_by_source ON events (tenant, source, occurred_at, seq);
