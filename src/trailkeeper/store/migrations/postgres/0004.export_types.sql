-- depends: 0003.key_pairs
-- Row types whose field names and order are those of an exported event (formats.EventView),
-- so that row_to_json renders each export line in the database, compactly (see
-- store/sql.py: PG_EVENT_JSON). Nothing is stored in them.

CREATE TYPE tk_export_actor AS (
    id text, name text, email text, type text, staff boolean, status text
);
CREATE TYPE tk_export_target AS (type text, id text, name text, email text);
CREATE TYPE tk_export_context AS (ip text, user_agent text);
CREATE TYPE tk_export_event AS (
    id          text,
    tenant      text,
    occurred_at text,
    received_at text,
    action      text,
    type        text,
    actor       tk_export_actor,
    target      tk_export_target,
    source      text,
    context     tk_export_context,
    metadata    json,
    log_index   bigint,
    leaf_hash   text
);
