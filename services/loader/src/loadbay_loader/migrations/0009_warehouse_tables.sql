-- Which warehouse tables the loader created, and for whom. The loader never drops, replaces
-- or rewrites a table it did not create for that owner: a reload dataset (owner_id = dataset
-- id) or a client workspace (owner_id = its schema, one per workspace).
CREATE TABLE warehouse_tables (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    owner_kind text NOT NULL CHECK (owner_kind IN ('dataset', 'workspace')),
    -- NULL: its dataset was deleted; the next dataset loading into it adopts it
    owner_id text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
CREATE INDEX warehouse_tables_by_owner ON warehouse_tables (owner_kind, owner_id);

-- Reload tables made before this registry, from the ledger: each table belongs to the dataset
-- whose reload last succeeded into it. Not in the workspaces' ws_ schemas: a reload domain
-- there (possible before ws_ was reserved) loses its claim to the workspace.
INSERT INTO warehouse_tables (schema_name, table_name, owner_kind, owner_id)
SELECT DISTINCT ON (l.target)
       split_part(l.target, '.', 1), split_part(l.target, '.', 2), 'dataset', l.dataset_id
FROM loads l
WHERE l.request_type = 'reload.requested' AND l.status = 'succeeded'
  AND l.target ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'
  AND l.target !~ '^(ws_|loadbay_|pg_)'
  AND to_regclass(l.target) IS NOT NULL
ORDER BY l.target, l.finished_at DESC
ON CONFLICT DO NOTHING;

-- Claim schema.table for an owner before writing it. Passes when the table is registered to
-- that owner; registers it when it does not exist yet; adopts it when its dataset was deleted
-- (same kind), or, with adopt_unregistered (client workspaces: ws_ schemas are theirs alone),
-- when it exists but was never registered. Anything else raises insufficient_privilege
-- (42501) with a message for a person, and the caller's load changes nothing.
CREATE FUNCTION claim_warehouse_table(
    p_schema text, p_table text, p_kind text, p_owner text, adopt_unregistered boolean
) RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    found_kind text;
    found_owner text;
    mine text := CASE p_kind WHEN 'dataset' THEN 'this dataset' ELSE 'this client workspace' END;
BEGIN
    FOR attempt IN 1..2 LOOP
        SELECT owner_kind, owner_id INTO found_kind, found_owner FROM warehouse_tables
         WHERE schema_name = p_schema AND table_name = p_table FOR UPDATE;
        IF FOUND THEN
            IF found_kind = p_kind AND found_owner = p_owner THEN
                RETURN 'owned';
            END IF;
            IF found_kind = p_kind AND found_owner IS NULL THEN
                UPDATE warehouse_tables SET owner_id = p_owner, registered_at = now()
                 WHERE schema_name = p_schema AND table_name = p_table;
                RETURN 'adopted';
            END IF;
            RAISE EXCEPTION 'warehouse table %.% belongs to %: loadbay never drops or replaces'
                ' a table it did not create for %; nothing was changed', p_schema, p_table,
                CASE WHEN found_kind = 'workspace' THEN 'a client workspace'
                     WHEN p_kind = 'dataset' THEN 'another dataset'
                     ELSE 'a reload dataset' END, mine
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'choose another domain or dataset name';
        END IF;
        IF to_regclass(format('%I.%I', p_schema, p_table)) IS NOT NULL THEN
            IF NOT adopt_unregistered THEN
                RAISE EXCEPTION 'warehouse table %.% exists but loadbay did not create it for'
                    ' %: it is left as it is and nothing was changed', p_schema, p_table, mine
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'drop or rename that table, or choose another domain or name';
            END IF;
        END IF;
        INSERT INTO warehouse_tables (schema_name, table_name, owner_kind, owner_id)
        VALUES (p_schema, p_table, p_kind, p_owner) ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN 'registered';
        END IF;
        -- registered concurrently by another load: look again
    END LOOP;
    RAISE EXCEPTION 'warehouse table %.% is being claimed concurrently', p_schema, p_table
        USING ERRCODE = 'lock_not_available';
END $$;
