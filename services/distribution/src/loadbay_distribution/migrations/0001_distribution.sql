-- Data products, their segments, client workspaces and datasets; per-workspace load state
-- (LSTS and failures); runs with their loads and per-workspace results; cron schedules.
CREATE TABLE data_products (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    bucket text NOT NULL,
    prefix text NOT NULL,
    owner_id text NOT NULL,
    owner_email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE segments (
    data_product_id text NOT NULL REFERENCES data_products (id) ON DELETE CASCADE,
    name text NOT NULL,
    PRIMARY KEY (data_product_id, name)
);

CREATE TABLE workspaces (
    id text PRIMARY KEY,
    data_product_id text NOT NULL REFERENCES data_products (id) ON DELETE CASCADE,
    segment text NOT NULL,
    client_id text NOT NULL CHECK (client_id ~ '^[0-9A-Za-z_]{1,255}$'),
    schema_name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (data_product_id, client_id),
    FOREIGN KEY (data_product_id, segment) REFERENCES segments (data_product_id, name)
);

CREATE TABLE datasets (
    data_product_id text NOT NULL REFERENCES data_products (id) ON DELETE CASCADE,
    name text NOT NULL,
    segment text NOT NULL,
    columns jsonb NOT NULL,
    grain text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (data_product_id, name),
    FOREIGN KEY (data_product_id, segment) REFERENCES segments (data_product_id, name)
);

CREATE TABLE load_states (
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    dataset text NOT NULL,
    lsts text,
    failure_streak int NOT NULL DEFAULT 0,
    last_failed_ts text,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, dataset)
);

CREATE TABLE runs (
    id text PRIMARY KEY,
    data_product_id text NOT NULL REFERENCES data_products (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'partially_failed')),
    trigger text NOT NULL,
    triggered_by text NOT NULL,
    plan jsonb NOT NULL DEFAULT '{}',
    problems text[] NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- Two runs of one data product never overlap.
CREATE UNIQUE INDEX runs_one_running ON runs (data_product_id) WHERE status = 'running';
CREATE INDEX runs_by_product ON runs (data_product_id, started_at DESC);

CREATE TABLE run_loads (
    request_id text PRIMARY KEY,
    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    dataset text NOT NULL,
    timestamp text NOT NULL,
    keys text[] NOT NULL,
    targets jsonb NOT NULL,
    done boolean NOT NULL DEFAULT false
);

CREATE TABLE run_results (
    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    workspace_id text NOT NULL,
    client_id text NOT NULL,
    dataset text NOT NULL,
    timestamp text NOT NULL,
    file text NOT NULL,
    mode text NOT NULL,
    status text NOT NULL,
    rows_upserted bigint NOT NULL DEFAULT 0,
    rows_deleted bigint NOT NULL DEFAULT 0,
    reason text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, workspace_id, dataset, timestamp)
);

CREATE TABLE schedules (
    data_product_id text PRIMARY KEY REFERENCES data_products (id) ON DELETE CASCADE,
    cron text NOT NULL,
    next_run_at timestamptz NOT NULL
);
