-- The loader's ledger: one row per load it carried out, written with the load's effect.
CREATE TABLE loads (
    id text PRIMARY KEY,
    request_type text NOT NULL,
    dataset_id text NOT NULL,
    target text NOT NULL,
    status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    files int NOT NULL,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    error jsonb,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL
);
CREATE INDEX loads_by_dataset ON loads (dataset_id, started_at DESC);
