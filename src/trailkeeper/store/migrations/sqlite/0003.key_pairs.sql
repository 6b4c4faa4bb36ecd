-- depends: 0002.ledger
-- Public keys of the key pairs that sign Gr4vy-style JWTs (ES512). The id is the key's
-- RFC 7638 JWK thumbprint, which clients send as the JWT "kid"; only public keys are stored.

CREATE TABLE key_pairs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX key_pairs_by_tenant ON key_pairs (tenant);
