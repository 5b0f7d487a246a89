-- Workspace loads re-check a file value by value and report PostgreSQL's own message for a bad
-- one with pg_input_error_info(text, type), new in PostgreSQL 16 (workspace/store.py). On an
-- older server (15) a function of the same name in this schema stands in for it, as
-- 0012_pg15_input_is_valid.sql does for pg_input_is_valid: it casts, and a data exception
-- gives its message, detail, hint and SQLSTATE (all NULL for a valid value). On 16 and later
-- nothing is created.
DO $migration$
BEGIN
    IF current_setting('server_version_num')::int < 160000 THEN
        CREATE FUNCTION pg_input_error_info(
            value text, type_name text,
            OUT message text, OUT detail text, OUT hint text, OUT sql_error_code text
        ) RETURNS record LANGUAGE plpgsql STABLE AS $function$
        BEGIN
            EXECUTE format('SELECT %L::%s', value, type_name::regtype);
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                hint = PG_EXCEPTION_HINT, sql_error_code = RETURNED_SQLSTATE;
            detail := nullif(detail, '');  -- NULL when there is none, as on 16
            hint := nullif(hint, '');
        END
        $function$;
    END IF;
END
$migration$;
