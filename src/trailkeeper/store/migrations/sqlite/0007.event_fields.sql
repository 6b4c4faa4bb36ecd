-- depends: 0006.admin
-- The event's columns follow the field table (model.FIELDS): request_hash, a fingerprint
-- column no release ever filled, goes.
ALTER TABLE events DROP COLUMN request_hash;
