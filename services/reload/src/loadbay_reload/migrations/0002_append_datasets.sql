-- Append datasets: each file's rows are added once (S3 connections, skip-LZ).
ALTER TABLE datasets DROP CONSTRAINT datasets_dataset_type_check;
ALTER TABLE datasets ADD CONSTRAINT datasets_dataset_type_check
    CHECK (dataset_type IN ('reload', 'append'));
