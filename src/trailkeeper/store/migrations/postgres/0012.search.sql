-- depends: 0011.retention
-- Search (docs/search.md).
-- Prefix qualifiers (`action:user.*`) are ranges (action >= 'user.' AND action < 'user/'):
-- the qualifier columns compare in code-point order ("C"), whatever the database's default
-- collation, so the range means "starts with" and their indexes serve it. Equality is
-- unchanged (every deterministic collation compares equal strings equal).
ALTER TABLE events
    ALTER COLUMN actor_id TYPE text COLLATE "C",
    ALTER COLUMN actor_email TYPE text COLLATE "C",
    ALTER COLUMN action TYPE text COLLATE "C",
    ALTER COLUMN type TYPE text COLLATE "C",
    ALTER COLUMN target_type TYPE text COLLATE "C",
    ALTER COLUMN target_id TYPE text COLLATE "C",
    ALTER COLUMN source TYPE text COLLATE "C";
-- Free text: the words of actor name and email, target name, action and type, in that order,
-- as a tsvector ('simple': no stemming, no stop words) with a GIN index. Words are runs of
-- letters and digits, lowercased (the same rule as SQLite's FTS5 table).
ALTER TABLE events ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(lower(
        coalesce(actor_name, '') || ' ' || coalesce(actor_email, '') || ' '
        || coalesce(target_name, '') || ' ' || action || ' ' || coalesce(type, '')
    ), '[^[:alnum:]]+', ' ', 'g'))
) STORED;
CREATE INDEX events_search ON events USING gin (search);
