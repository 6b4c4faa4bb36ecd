-- depends: 0007.admin
-- The event's columns follow the field table (model.FIELDS). Export lines are rendered from
-- expressions derived from it (store/sql.py), so the export row types of 0004 go, and so does
-- request_hash, a fingerprint column no release ever filled.
ALTER TABLE events DROP COLUMN request_hash;
DROP TYPE tk_export_event;
DROP TYPE tk_export_actor;
DROP TYPE tk_export_target;
DROP TYPE tk_export_context;
