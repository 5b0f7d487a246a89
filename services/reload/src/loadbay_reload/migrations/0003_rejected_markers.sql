-- `_SUCCESS` markers turned away while a reload ran: the same marker (same object, same ETag)
-- announced again during the same run, by the watcher and a producer say, is told only once.
CREATE TABLE rejected_markers (
    execution_id text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key text NOT NULL,
    etag text NOT NULL,
    PRIMARY KEY (execution_id, key, etag)
);
