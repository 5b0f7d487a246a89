-- Bulk-loader jobs (the Neptune-style API), their feeds, error logs, and what each source
-- has loaded so far (for RESUME / AUTO).
CREATE TABLE graph_loads (
    id text PRIMARY KEY,
    seq bigserial NOT NULL UNIQUE,              -- FIFO order of the queue
    source text NOT NULL,
    bucket text NOT NULL,
    prefix text NOT NULL,
    format text NOT NULL,
    mode text NOT NULL,
    fail_on_error boolean NOT NULL,
    parallelism text NOT NULL,
    parser_configuration jsonb NOT NULL,
    update_single_cardinality boolean NOT NULL,
    user_provided_edge_ids boolean,
    queue_request boolean NOT NULL,
    edge_only_load boolean NOT NULL,
    dependencies text[] NOT NULL,
    region text NOT NULL,
    iam_role_arn text NOT NULL,
    requested_by text,
    status text NOT NULL,
    run_number int NOT NULL DEFAULT 1,
    retry_number int NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    start_time timestamptz,
    finished_at timestamptz,
    total_time_spent double precision NOT NULL DEFAULT 0,
    total_records bigint NOT NULL DEFAULT 0,
    total_duplicates bigint NOT NULL DEFAULT 0,
    parsing_errors bigint NOT NULL DEFAULT 0,
    datatype_mismatch_errors bigint NOT NULL DEFAULT 0,
    insert_errors bigint NOT NULL DEFAULT 0,
    error_count int NOT NULL DEFAULT 0
);
CREATE INDEX graph_loads_by_status ON graph_loads (status, seq);

CREATE TABLE graph_load_feeds (
    load_id text NOT NULL REFERENCES graph_loads (id) ON DELETE CASCADE,
    uri text NOT NULL,
    kind text NOT NULL,
    position int NOT NULL,
    status text NOT NULL,
    start_time timestamptz,
    total_time_spent double precision NOT NULL DEFAULT 0,
    total_records bigint NOT NULL DEFAULT 0,
    total_duplicates bigint NOT NULL DEFAULT 0,
    parsing_errors bigint NOT NULL DEFAULT 0,
    datatype_mismatch_errors bigint NOT NULL DEFAULT 0,
    insert_errors bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (load_id, uri)
);

CREATE TABLE graph_load_errors (
    load_id text NOT NULL REFERENCES graph_loads (id) ON DELETE CASCADE,
    idx int NOT NULL,
    error_code text NOT NULL,
    error_message text NOT NULL,
    file_name text NOT NULL,
    record_num bigint NOT NULL,
    PRIMARY KEY (load_id, idx)
);

-- Files a source loaded successfully, by ETag: RESUME and AUTO skip them.
CREATE TABLE graph_source_files (
    source text NOT NULL,
    uri text NOT NULL,
    etag text NOT NULL,
    load_id text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, uri)
);
