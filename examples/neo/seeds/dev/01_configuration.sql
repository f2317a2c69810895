INSERT INTO core.system_configuration (configuration_key, configuration_value, description) VALUES
    ('database_version', '1.0.0', 'schema release'),
    ('max_sealed_data_size', '1048576', 'bytes'),
    ('default_session_timeout', '3600', 'seconds'),
    ('cleanup_interval', '300', 'seconds'),
    ('audit_retention_days', '365', 'days'),
    ('performance_monitoring_enabled', 'true', NULL)
ON CONFLICT (configuration_key) DO NOTHING;

INSERT INTO core.users (id, username, email, password_hash, role) VALUES
    ('00000000-0000-4000-8000-000000000001', 'admin', 'admin@neoservicelayer.io', public.hash_with_salt('change me'), 'Administrator')
ON CONFLICT (username) DO NOTHING;

INSERT INTO sgx.sealed_data_items (key, service_name, sealed_data, expires_at) VALUES
    ('demo-secret', 'EnclaveStorage', '\x00010203', NOW() + INTERVAL '1 day'),
    ('expired-secret', 'EnclaveStorage', '\x04050607', NOW() - INTERVAL '1 day')
ON CONFLICT (key, service_name) DO NOTHING;
