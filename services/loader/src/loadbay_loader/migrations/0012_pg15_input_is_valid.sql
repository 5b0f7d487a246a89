-- The bulk loader checks values with pg_input_is_valid(text, type), new in PostgreSQL 16
-- (graph/values_store.py). On an older server (15, the oldest loadbay supports) a function of
-- the same name in this schema stands in for it: it casts, and a data exception (class 22:
-- invalid syntax, out of range, bad date) means not valid. On 16 and later nothing is created,
-- and pg_catalog's own function is the one found (pg_catalog comes first in the search path).
DO $migration$
BEGIN
    IF current_setting('server_version_num')::int < 160000 THEN
        CREATE FUNCTION pg_input_is_valid(value text, type_name text)
        RETURNS boolean LANGUAGE plpgsql STABLE AS $function$
        BEGIN
            EXECUTE format('SELECT %L::%s', value, type_name::regtype);
            RETURN true;
        EXCEPTION WHEN data_exception THEN
            RETURN false;
        END
        $function$;
    END IF;
END
$migration$;
