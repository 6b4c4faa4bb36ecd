-- depends: 0010.retention
-- Free-text search (docs/search.md): an FTS5 index over the text free words match, one
-- document per event (rowid = seq): actor name and email, target name, action and type,
-- joined by spaces. Contentless: it stores only the index; triggers keep it in step with
-- events (inserted; deleted by purge or an undone insert; rewritten by erasure). Words are runs of
-- letters and digits, case folded, diacritics kept (the same rule as PostgreSQL's column).
CREATE VIRTUAL TABLE events_fts USING fts5(
    doc, content='', tokenize='unicode61 remove_diacritics 0'
);
INSERT INTO events_fts (rowid, doc)
SELECT seq, coalesce(actor_name, '') || ' ' || coalesce(actor_email, '') || ' '
    || coalesce(target_name, '') || ' ' || action || ' ' || coalesce(type, '')
FROM events;
CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, doc) VALUES (
        new.seq, coalesce(new.actor_name, '') || ' ' || coalesce(new.actor_email, '') || ' '
        || coalesce(new.target_name, '') || ' ' || new.action || ' ' || coalesce(new.type, '')
    );
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, doc) VALUES (
        'delete', old.seq,
        coalesce(old.actor_name, '') || ' ' || coalesce(old.actor_email, '') || ' '
        || coalesce(old.target_name, '') || ' ' || old.action || ' ' || coalesce(old.type, '')
    );
END;
-- Erasure (docs/retention.md) rewrites the searched columns in place: the index follows, so
-- an erased name is not found by free text any more.
CREATE TRIGGER events_fts_update AFTER UPDATE OF actor_name, actor_email, target_name, action, type
ON events BEGIN
    INSERT INTO events_fts (events_fts, rowid, doc) VALUES (
        'delete', old.seq,
        coalesce(old.actor_name, '') || ' ' || coalesce(old.actor_email, '') || ' '
        || coalesce(old.target_name, '') || ' ' || old.action || ' ' || coalesce(old.type, '')
    );
    INSERT INTO events_fts (rowid, doc) VALUES (
        new.seq, coalesce(new.actor_name, '') || ' ' || coalesce(new.actor_email, '') || ' '
        || coalesce(new.target_name, '') || ' ' || new.action || ' ' || coalesce(new.type, '')
    );
END;
