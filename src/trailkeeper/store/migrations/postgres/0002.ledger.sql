-- depends: 0001.initial
-- Tamper evidence: each event's gap-free position in its tenant's Merkle log and its leaf
-- hash; the perfect-subtree nodes above the leaves; the current tree head; signed checkpoints.
-- All keyed by tenant first (distributable with the events table).

ALTER TABLE events ADD COLUMN log_index bigint;
ALTER TABLE events ADD COLUMN leaf_hash bytea;
CREATE UNIQUE INDEX events_by_log_index ON events (tenant, log_index);

CREATE TABLE ledger_nodes (
    tenant  text NOT NULL,
    level   smallint NOT NULL,
    idx     bigint NOT NULL,
    hash    bytea NOT NULL,
    PRIMARY KEY (tenant, level, idx)
);

CREATE TABLE ledger_heads (
    tenant  text PRIMARY KEY,
    size    bigint NOT NULL,
    root    bytea NOT NULL
);

CREATE TABLE checkpoints (
    tenant      text NOT NULL,
    size        bigint NOT NULL,
    root        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    note        text NOT NULL,
    PRIMARY KEY (tenant, size)
);
