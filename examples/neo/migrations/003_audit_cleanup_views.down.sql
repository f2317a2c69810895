DROP VIEW IF EXISTS monitoring.table_usage, monitoring.index_usage, monitoring.database_performance;
DROP FUNCTION IF EXISTS public.cleanup_expired_data();
DROP TRIGGER IF EXISTS audit_sealed_data_items ON sgx.sealed_data_items;
DROP TRIGGER IF EXISTS audit_users ON core.users;
DROP FUNCTION IF EXISTS public.audit_trigger_function();
