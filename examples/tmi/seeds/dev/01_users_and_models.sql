INSERT INTO users (id, email, name) VALUES
    ('00000000-0000-4000-8000-00000000000a', 'alice@example.com', 'Alice'),
    ('00000000-0000-4000-8000-00000000000b', 'bob@example.com', 'Bob')
ON CONFLICT (email) DO NOTHING;

INSERT INTO user_providers (user_id, provider, provider_user_id, email, is_primary) VALUES
    ('00000000-0000-4000-8000-00000000000a', 'github', 'alice-gh', 'alice@example.com', true),
    ('00000000-0000-4000-8000-00000000000b', 'google', 'bob-g', 'bob@example.com', true)
ON CONFLICT (user_id, provider) DO NOTHING;

INSERT INTO threat_models (id, owner_email, name, created_by, threat_model_framework) VALUES
    ('00000000-0000-4000-8000-000000000101', 'alice@example.com', 'Payments API', 'alice@example.com', 'STRIDE')
ON CONFLICT (id) DO NOTHING;

INSERT INTO threat_model_access (threat_model_id, user_email, role) VALUES
    ('00000000-0000-4000-8000-000000000101', 'alice@example.com', 'owner'),
    ('00000000-0000-4000-8000-000000000101', 'bob@example.com', 'reader')
ON CONFLICT (threat_model_id, user_email) DO NOTHING;

INSERT INTO threats (id, threat_model_id, name, severity, likelihood, risk_level) VALUES
    ('00000000-0000-4000-8000-000000000201', '00000000-0000-4000-8000-000000000101', 'Token replay', 'high', 'medium', 'high'),
    ('00000000-0000-4000-8000-000000000202', '00000000-0000-4000-8000-000000000101', 'Log injection', 'low', 'low', 'low')
ON CONFLICT (id) DO NOTHING;

INSERT INTO diagrams (id, threat_model_id, name, cells) VALUES
    ('00000000-0000-4000-8000-000000000301', '00000000-0000-4000-8000-000000000101', 'Context', '[{"id": "api", "shape": "process"}]')
ON CONFLICT (id) DO NOTHING;
