-- Reload datasets, their landed files and the executions that load them.
CREATE TABLE datasets (
    id text PRIMARY KEY,
    domain text NOT NULL,
    name text NOT NULL,
    dataset_type text NOT NULL DEFAULT 'reload' CHECK (dataset_type IN ('reload')),
    file_type text NOT NULL,
    columns jsonb NOT NULL,
    csv_options jsonb NOT NULL,
    description text NOT NULL DEFAULT '',
    owner_id text NOT NULL,
    owner_email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain, name)
);

CREATE TABLE dataset_users (
    dataset_id text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    email text NOT NULL,
    PRIMARY KEY (dataset_id, user_id)
);

CREATE TABLE executions (
    id text PRIMARY KEY,
    dataset_id text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    trigger text NOT NULL CHECK (trigger IN ('api', 'success-file')),
    triggered_by text NOT NULL,
    triggered_by_email text NOT NULL,
    batch text,
    reason text,
    error jsonb,
    file_count int NOT NULL,
    rows bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- One reload at a time per dataset, whatever races the API and triggers run.
CREATE UNIQUE INDEX executions_one_running ON executions (dataset_id) WHERE status = 'running';
CREATE INDEX executions_by_dataset ON executions (dataset_id, started_at DESC);

CREATE TABLE files (
    id bigserial PRIMARY KEY,
    dataset_id text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    bucket text NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    batch text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    landed_by text NOT NULL,
    landing_source text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'processing', 'completed')),
    error text,
    execution_id text REFERENCES executions (id) ON DELETE SET NULL,
    landed_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, key)
);
CREATE INDEX files_by_dataset_status ON files (dataset_id, status);

CREATE TABLE execution_files (
    execution_id text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    file_id bigint NOT NULL,
    key text NOT NULL,
    PRIMARY KEY (execution_id, file_id)
);

-- What the bucket watcher has already reported, so each object version lands once.
CREATE TABLE watched_objects (
    bucket text NOT NULL,
    key text NOT NULL,
    etag text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, key)
);
