-- depends: 0010.streams
-- Retention and erasure (docs/retention.md). A tenant may keep events for `retention_days`
-- (NULL: for ever) and name metadata keys that hold personal data (a JSON array).
-- A purged prefix of a tenant's log leaves behind its size (`ledger_floors`) and the few
-- tree nodes proofs still need (`ledger_kept`: the left frontier of the prefix and the
-- nodes consistency proofs from stored checkpoints inside it need).
-- A legal hold on a tenant (subject NULL) or a subject (a keyed hash) blocks purge and erasure.
ALTER TABLE tenants ADD COLUMN retention_days integer;
ALTER TABLE tenants ADD COLUMN personal_metadata_keys text;

CREATE TABLE ledger_floors (
    tenant       text PRIMARY KEY,
    first_index  bigint NOT NULL
);

CREATE TABLE ledger_kept (
    tenant  text NOT NULL,
    level   smallint NOT NULL,
    idx     bigint NOT NULL,
    hash    bytea NOT NULL,
    PRIMARY KEY (tenant, level, idx)
);

CREATE TABLE legal_holds (
    id          text PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenants (id),
    subject     text,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX legal_holds_by_tenant ON legal_holds (tenant);
