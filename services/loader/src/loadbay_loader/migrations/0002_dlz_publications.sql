-- Copies of validated files still to be written to the DLZ: recorded in the load's own
-- transaction, carried out afterwards by the loader, so the copy is off the load's critical
-- path and survives a crash (a copy done twice is harmless).
CREATE TABLE dlz_publications (
    id bigserial PRIMARY KEY,
    load_id text NOT NULL,
    dlz_bucket text NOT NULL,
    dlz_prefix text NOT NULL,
    files jsonb NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
