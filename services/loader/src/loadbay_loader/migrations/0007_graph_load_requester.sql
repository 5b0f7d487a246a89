-- Who asked for a load gets its outcome by email.
ALTER TABLE graph_loads ADD COLUMN requested_by_email text;
