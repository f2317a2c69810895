-- Every change to users and sealed data is audited.
CREATE OR REPLACE FUNCTION public.audit_trigger_function() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_id text := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
BEGIN
    INSERT INTO monitoring.audit_logs (service_name, action, resource_type, resource_id, user_id, result, before_state, after_state)
    VALUES (TG_TABLE_SCHEMA, TG_OP, TG_TABLE_NAME, row_id, NULLIF(current_setting('neo.current_user_id', true), '')::uuid, 'Success',
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END;
$$;

CREATE TRIGGER audit_users AFTER INSERT OR UPDATE OR DELETE ON core.users FOR EACH ROW EXECUTE FUNCTION public.audit_trigger_function();
CREATE TRIGGER audit_sealed_data_items AFTER INSERT OR UPDATE OR DELETE ON sgx.sealed_data_items FOR EACH ROW EXECUTE FUNCTION public.audit_trigger_function();

-- Deletes expired sealed data and sessions and year-old audit rows, auditing each step.
-- Returns what it removed.
CREATE OR REPLACE FUNCTION public.cleanup_expired_data(
    OUT sealed_items_removed bigint, OUT sessions_removed bigint, OUT audit_rows_removed bigint)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sgx.sealed_data_items WHERE expires_at < NOW();
    GET DIAGNOSTICS sealed_items_removed = ROW_COUNT;
    DELETE FROM auth.authentication_sessions WHERE expires_at < NOW();
    GET DIAGNOSTICS sessions_removed = ROW_COUNT;
    DELETE FROM monitoring.audit_logs WHERE timestamp < NOW() - INTERVAL '1 year';
    GET DIAGNOSTICS audit_rows_removed = ROW_COUNT;
    INSERT INTO monitoring.audit_logs (service_name, action, result, details)
    VALUES ('system', 'CLEANUP_EXPIRED_DATA', 'Success',
            format('removed %s sealed items, %s sessions, %s audit rows', sealed_items_removed, sessions_removed, audit_rows_removed));
END;
$$;

-- Monitoring views, written against the catalog columns as they are named.
CREATE VIEW monitoring.database_performance AS
SELECT schemaname, tablename, attname, n_distinct, correlation, most_common_vals::text AS most_common_vals,
       most_common_freqs, histogram_bounds::text AS histogram_bounds
FROM pg_stats
WHERE schemaname IN ('core', 'auth', 'sgx', 'oracle', 'voting', 'crosschain', 'monitoring', 'eventsourcing');

CREATE VIEW monitoring.index_usage AS
SELECT s.schemaname, s.relname AS tablename, s.indexrelname AS indexname, s.idx_tup_read, s.idx_tup_fetch, s.idx_scan,
       io.idx_blks_read, io.idx_blks_hit
FROM pg_stat_user_indexes s JOIN pg_statio_user_indexes io USING (indexrelid);

CREATE VIEW monitoring.table_usage AS
SELECT schemaname, relname AS tablename, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_del,
       n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze
FROM pg_stat_user_tables;
