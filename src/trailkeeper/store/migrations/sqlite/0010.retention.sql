-- depends: 0009.streams
-- Retention and erasure (docs/retention.md). A tenant may keep events for `retention_days`
-- (NULL: for ever) and name metadata keys that hold personal data (a JSON array).
-- A purged prefix of a tenant's log leaves behind its size (`ledger_floors`) and the few
-- tree nodes proofs still need (`ledger_kept`: the left frontier of the prefix and the
-- nodes consistency proofs from stored checkpoints inside it need).
-- A legal hold on a tenant (subject NULL) or a subject (a keyed hash) blocks purge and erasure.
ALTER TABLE tenants ADD COLUMN retention_days INTEGER;
ALTER TABLE tenants ADD COLUMN personal_metadata_keys TEXT;

CREATE TABLE ledger_floors (
    tenant       TEXT PRIMARY KEY,
    first_index  INTEGER NOT NULL
);

CREATE TABLE ledger_kept (
    tenant  TEXT NOT NULL,
    level   INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;

CREATE TABLE legal_holds (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id),
    subject     TEXT,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX legal_holds_by_tenant ON legal_holds (tenant);
