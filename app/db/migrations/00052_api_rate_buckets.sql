-- +goose Up
-- The API's per-client token buckets, shared by all replicas: each replica
-- leases a few tokens at a time (app/providerapi/limits.go), so the limit a
-- client sees is the configured one however many replicas answer it. Tokens
-- are a count, not money. UNLOGGED: a lease writes no WAL and waits for no
-- fsync; after a crash the buckets start full again, which is harmless.
CREATE UNLOGGED TABLE api_rate_buckets (
    client_id  BIGINT PRIMARY KEY REFERENCES api_clients(id) ON DELETE CASCADE,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE api_rate_buckets;
