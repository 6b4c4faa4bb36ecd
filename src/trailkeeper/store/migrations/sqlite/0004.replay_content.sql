-- depends: 0003.key_pairs
-- A reused event id is told apart as a replay or a conflict by comparing the stored content
-- (store/idempotency.py) instead of a SHA-256 fingerprint computed for every event ingested.
-- What the stored row cannot say by itself is whether the client gave occurred_at: this
-- column. Rows stored before it keep their fingerprint in request_hash (32 bytes) and NULL
-- here; newer rows store an empty request_hash.
ALTER TABLE events ADD COLUMN occurred_at_given INTEGER;
