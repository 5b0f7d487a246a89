-- Connection names are unique per owner, not across users: a global name would tell anyone
-- (with a 409) that another user has a connection of that name.
ALTER TABLE connections DROP CONSTRAINT connections_name_key;
ALTER TABLE connections ADD CONSTRAINT connections_owner_name_key UNIQUE (owner_id, name);

-- Datasets as the reload service announces them (dataset.created / dataset.deleted): who owns
-- and may use each, so a binding is only made by someone who may use the dataset. A deleted
-- dataset keeps its row (deleted_at) so that a late redelivery changes nothing.
CREATE TABLE datasets (
    dataset_id text PRIMARY KEY,
    domain text NOT NULL,
    name text NOT NULL,
    dataset_type text NOT NULL,
    file_type text NOT NULL,
    owner_id text NOT NULL,
    owner_email text NOT NULL,
    authorized_users text[] NOT NULL DEFAULT '{}',
    seen_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX datasets_live_by_name ON datasets (domain, name) WHERE deleted_at IS NULL;

-- A binding belongs to one dataset (by id: a dataset deleted and created again under the same
-- name is another dataset). The dataset's deletion disables its bindings with the reason; a
-- disabled binding is kept for its runs' history and no longer blocks binding the name again.
ALTER TABLE bindings ADD COLUMN dataset_id text;
ALTER TABLE bindings ADD COLUMN disabled_at timestamptz;
ALTER TABLE bindings ADD COLUMN disabled_reason text;
ALTER TABLE bindings DROP CONSTRAINT bindings_dataset_key;
CREATE UNIQUE INDEX bindings_one_enabled ON bindings (dataset) WHERE disabled_at IS NULL;
CREATE INDEX bindings_by_dataset_id ON bindings (dataset_id);
