-- depends: 0005.replay_content
-- Key pairs are unique per tenant, not across tenants: one tenant registering a public key
-- must neither block another from registering it nor tell it that someone holds that key.
-- A JWT finds its pair by (merchant account, kid). The new key leads with the tenant, so it
-- also serves listing a tenant's pairs.
ALTER TABLE key_pairs DROP CONSTRAINT key_pairs_pkey;
ALTER TABLE key_pairs ADD PRIMARY KEY (tenant, id);
DROP INDEX key_pairs_by_tenant;
