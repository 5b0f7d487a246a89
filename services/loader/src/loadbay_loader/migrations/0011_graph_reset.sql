-- Neptune's fast reset (POST /system, graph_reset.py): the token that initiateDatabaseReset
-- issues and performDatabaseReset must present. Only the latest token is valid, so there is at
-- most one row; it is kept in the database (not in a process) because any replica of the
-- loader may answer the second request.
CREATE TABLE graph_reset_token (
    only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    token uuid NOT NULL,
    issued_by text,
    issued_at timestamptz NOT NULL DEFAULT now()
);
