-- depends: 0007.event_fields
-- Whether the action succeeded (docs/events.md): filterable, so indexed like the other filters.
-- (Validation admits only success and failure. No CHECK here: SQLite's ALTER TABLE then runs
-- a check query whose text the sqlite3 shell layer printed to stdout during migration.)
ALTER TABLE events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'success';
CREATE INDEX events_by_outcome ON events (tenant, outcome, occurred_at);
