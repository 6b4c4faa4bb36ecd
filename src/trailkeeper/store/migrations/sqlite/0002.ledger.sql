-- depends: 0001.initial
-- Tamper evidence: each event's gap-free position in its tenant's Merkle log and its leaf
-- hash; the perfect-subtree nodes above the leaves; the current tree head; signed checkpoints.

ALTER TABLE events ADD COLUMN log_index INTEGER;
ALTER TABLE events ADD COLUMN leaf_hash BLOB;
CREATE UNIQUE INDEX events_by_log_index ON events (tenant, log_index);

CREATE TABLE ledger_nodes (
    tenant  TEXT NOT NULL,
    level   INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_heads (
    tenant  TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    root    BLOB NOT NULL
);

CREATE TABLE checkpoints (
    tenant      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    root        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    note        TEXT NOT NULL,
    PRIMARY KEY (tenant, size)
);
