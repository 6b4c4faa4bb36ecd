-- depends: 0005.key_pairs_per_tenant
-- The admin API: a tenant can be deactivated (its credentials get 401, its data stays); an API
-- key can expire, and remembers (to the minute) when it was last used.
ALTER TABLE tenants ADD COLUMN deactivated_at INTEGER;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
