-- S3 connections (secrets encrypted), their authorized users and version history; bindings of
-- datasets to a connection path; DataIngestion schedules; runs with their per-object ledger;
-- the per-binding ledger of ingested files (name, size, ETag) the 1.6 comparison reads.
CREATE TABLE connections (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$'),
    connection_type text NOT NULL DEFAULT 's3' CHECK (connection_type = 's3'),
    description text NOT NULL DEFAULT '',
    bucket text NOT NULL,
    access_type text NOT NULL CHECK (access_type IN ('access_keys', 'bucket_policy')),
    version text NOT NULL CHECK (version IN ('1.6', '1.7', '1.8')),
    region text NOT NULL,
    endpoint_url text,
    kms_key_arn text,
    -- Fernet tokens; NULL for bucket_policy connections. Never selected by the API views.
    access_key_id_enc bytea,
    secret_access_key_enc bytea,
    owner_id text NOT NULL,
    owner_email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((access_type = 'access_keys') = (access_key_id_enc IS NOT NULL
                                            AND secret_access_key_enc IS NOT NULL))
);

CREATE TABLE connection_users (
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    PRIMARY KEY (connection_id, user_id)
);
CREATE INDEX connection_users_by_user ON connection_users (user_id);

CREATE TABLE connection_versions (
    id bigserial PRIMARY KEY,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    action text NOT NULL CHECK (action IN ('create', 'upgrade', 'downgrade')),
    from_version text,
    to_version text NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connection_versions_by_connection ON connection_versions (connection_id, id);

CREATE TABLE bindings (
    id text PRIMARY KEY,
    -- A connection with bindings cannot be deleted: unbind the datasets first.
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE RESTRICT,
    dataset text NOT NULL UNIQUE CHECK (dataset ~ '^[A-Za-z0-9_]+/[A-Za-z0-9_]+$'),
    dataset_type text NOT NULL CHECK (dataset_type IN ('reload', 'append')),
    file_type text NOT NULL,
    directory_path text NOT NULL,
    user_id text NOT NULL,
    user_email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bindings_by_connection ON bindings (connection_id);

CREATE TABLE schedules (
    binding_id text PRIMARY KEY REFERENCES bindings (id) ON DELETE CASCADE,
    job_type text NOT NULL CHECK (job_type = 'DataIngestion'),
    cron text NOT NULL,
    next_run_at timestamptz NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at);

CREATE TABLE runs (
    id text PRIMARY KEY,
    binding_id text NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    trigger text NOT NULL CHECK (trigger IN ('api', 'schedule')),
    triggered_by text NOT NULL,
    -- Fixed when the run starts, so a resumed run writes to the same batch folder.
    version text,
    skip_lz boolean NOT NULL DEFAULT false,
    upload_date bigint,
    reason text,
    copied_count int NOT NULL DEFAULT 0,
    skipped_count int NOT NULL DEFAULT 0,
    failed_count int NOT NULL DEFAULT 0,
    bytes_copied bigint NOT NULL DEFAULT 0,
    queued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker text,
    heartbeat_at timestamptz
);
-- One queued or running run per binding; the slots of the throttle are the running rows.
CREATE UNIQUE INDEX runs_one_active ON runs (binding_id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_queued ON runs (queued_at) WHERE status = 'queued';
CREATE INDEX runs_running ON runs (heartbeat_at) WHERE status = 'running';
CREATE INDEX runs_by_binding ON runs (binding_id, queued_at DESC);

-- What a run did with each remote object; `copied` rows are written as each copy completes,
-- so a resumed run does not copy them again.
CREATE TABLE run_objects (
    run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    source_key text NOT NULL,
    name text NOT NULL,
    size bigint NOT NULL,
    etag text NOT NULL,
    storage_class text NOT NULL,
    status text NOT NULL CHECK (status IN ('copied', 'skipped', 'failed')),
    dest_bucket text,
    dest_key text,
    dest_etag text,
    reason text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, source_key)
);

CREATE TABLE ingested_files (
    binding_id text NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
    name text NOT NULL,
    size bigint NOT NULL,
    etag text NOT NULL,
    run_id text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (binding_id, name, size, etag)
);
