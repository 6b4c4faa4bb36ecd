-- depends: 0008.event_fields
-- Whether the action succeeded (docs/events.md): filterable, so indexed like the other filters.
ALTER TABLE events ADD COLUMN outcome text NOT NULL DEFAULT 'success'
    CHECK (outcome IN ('success', 'failure'));
CREATE INDEX events_by_outcome ON events (tenant, outcome, occurred_at, seq);
