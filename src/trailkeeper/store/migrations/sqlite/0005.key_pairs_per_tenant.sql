-- depends: 0004.replay_content
-- Key pairs are unique per tenant, not across tenants: one tenant registering a public key
-- must neither block another from registering it nor tell it that someone holds that key.
-- A JWT finds its pair by (merchant account, kid). SQLite cannot change a primary key in
-- place, so the table is rebuilt; the new key leads with the tenant, so it also serves
-- listing a tenant's pairs.
CREATE TABLE key_pairs_by_tenant_id (
    id          TEXT NOT NULL,
    tenant      TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    PRIMARY KEY (tenant, id)
);
INSERT INTO key_pairs_by_tenant_id (id, tenant, name, public_key, created_at, revoked_at)
    SELECT id, tenant, name, public_key, created_at, revoked_at FROM key_pairs;
DROP TABLE key_pairs;
ALTER TABLE key_pairs_by_tenant_id RENAME TO key_pairs;
