-- Development data for the ERC-8004 backend. Every row has a fixed key and every insert
-- says what to do on conflict, so the file loads cleanly even outside `sage-db seed`
-- (which applies it once anyway). Events carry a fixed created_at: with the (id,
-- created_at) key that is what makes them idempotent.

INSERT INTO users (id, username, email, password_hash, created_at, is_active) VALUES
    ('test-user-1', 'alice', 'alice@example.com', '$2b$12$LQv3c1yqBWVHxkd0LHAkCOYz6TtxMQJqhN8/LewY5GyYqgFV0jz1q', NOW() - INTERVAL '30 days', true),
    ('test-user-2', 'bob', 'bob@example.com', '$2b$12$LQv3c1yqBWVHxkd0LHAkCOYz6TtxMQJqhN8/LewY5GyYqgFV0jz1q', NOW() - INTERVAL '15 days', true),
    ('test-user-3', 'charlie', 'charlie@example.com', '$2b$12$LQv3c1yqBWVHxkd0LHAkCOYz6TtxMQJqhN8/LewY5GyYqgFV0jz1q', NOW() - INTERVAL '7 days', false)
ON CONFLICT (id) DO NOTHING;

INSERT INTO triggers (id, user_id, name, description, chain_id, registry, enabled, is_stateful) VALUES
    ('trigger-1', 'test-user-1', 'High Reputation Alert', 'Notify when an agent scores above 80', 84532, 'reputation', true, false),
    ('trigger-2', 'test-user-1', 'EMA Score Monitor', 'Track the moving average of scores', 84532, 'reputation', true, true),
    ('trigger-3', 'test-user-2', 'Token Creation Monitor', 'Watch new agent identities', 84532, 'identity', false, false)
ON CONFLICT (id) DO NOTHING;

INSERT INTO trigger_conditions (id, trigger_id, condition_type, field, operator, value, config) VALUES
    (1, 'trigger-1', 'score_threshold', 'score', '>', '80', NULL),
    (2, 'trigger-2', 'ema_threshold', 'score', '>', '75', '{"window_size": 10, "alpha": 0.2}'),
    (3, 'trigger-3', 'event_type_equals', 'event_type', '=', 'TokenCreated', NULL)
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('trigger_conditions', 'id'), (SELECT max(id) FROM trigger_conditions));

INSERT INTO trigger_actions (id, trigger_id, action_type, priority, config) VALUES
    (1, 'trigger-1', 'telegram', 1, '{"chat_id": "123456789", "message_template": "Agent {{agent_id}} scored {{score}}", "parse_mode": "Markdown"}'),
    (2, 'trigger-2', 'rest', 1, '{"method": "POST", "url": "https://webhook.example.com/ema-alert", "timeout_ms": 5000}'),
    (3, 'trigger-3', 'mcp', 1, '{"resolve_endpoint": true, "tool_name": "agent.notifyTokenCreation", "verify_file_hash": false}')
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('trigger_actions', 'id'), (SELECT max(id) FROM trigger_actions));

INSERT INTO trigger_state (trigger_id, state_data) VALUES ('trigger-2', '{"ema": 72.5, "count": 15}')
ON CONFLICT (trigger_id) DO UPDATE SET state_data = EXCLUDED.state_data, last_updated = NOW();

INSERT INTO events (id, chain_id, block_number, block_hash, transaction_hash, log_index, registry, event_type, agent_id, timestamp,
                    client_address, feedback_index, score, tag1, created_at) VALUES
    ('84532-1000-0', 84532, 1000, '0xb1000', '0xt1000', 0, 'reputation', 'FeedbackProvided', 42, 1737590400, '0xclient1', 1, 85, 'quality', '2025-01-23T00:00:00Z'),
    ('84532-1001-0', 84532, 1001, '0xb1001', '0xt1001', 0, 'reputation', 'FeedbackProvided', 42, 1737590460, '0xclient2', 2, 90, 'speed', '2025-01-23T00:01:00Z'),
    ('84532-1002-0', 84532, 1002, '0xb1002', '0xt1002', 0, 'reputation', 'FeedbackProvided', 99, 1737590520, '0xclient1', 3, 65, 'quality', '2025-01-23T00:02:00Z'),
    ('84532-1003-0', 84532, 1003, '0xb1003', '0xt1003', 0, 'reputation', 'FeedbackProvided', 99, 1737590580, '0xclient3', 4, 88, 'accuracy', '2025-01-23T00:03:00Z')
ON CONFLICT (id, created_at) DO NOTHING;

INSERT INTO events (id, chain_id, block_number, block_hash, transaction_hash, log_index, registry, event_type, agent_id, timestamp,
                    owner, token_uri, created_at) VALUES
    ('84532-2000-0', 84532, 2000, '0xb2000', '0xt2000', 0, 'identity', 'TokenCreated', 42, 1737594000, '0xowner42', 'ipfs://agent42', '2025-01-23T01:00:00Z'),
    ('84532-2001-0', 84532, 2001, '0xb2001', '0xt2001', 0, 'identity', 'TokenCreated', 99, 1737594060, '0xowner99', 'ipfs://agent99', '2025-01-23T01:01:00Z')
ON CONFLICT (id, created_at) DO NOTHING;

INSERT INTO events (id, chain_id, block_number, block_hash, transaction_hash, log_index, registry, event_type, agent_id, timestamp,
                    validator_address, request_hash, response, created_at) VALUES
    ('84532-3000-0', 84532, 3000, '0xb3000', '0xt3000', 0, 'validation', 'ResponseProvided', 42, 1737597600, '0xvalidator1', '0xreq1', 100, '2025-01-23T02:00:00Z'),
    ('84532-3001-0', 84532, 3001, '0xb3001', '0xt3001', 0, 'validation', 'ResponseProvided', 99, 1737597660, '0xvalidator1', '0xreq2', 80, '2025-01-23T02:01:00Z')
ON CONFLICT (id, created_at) DO NOTHING;

INSERT INTO checkpoints (chain_id, last_block_number, last_block_hash) VALUES (84532, 3001, '0xabc301')
ON CONFLICT (chain_id) DO UPDATE SET last_block_number = EXCLUDED.last_block_number, last_block_hash = EXCLUDED.last_block_hash, updated_at = NOW();

INSERT INTO action_results (id, job_id, trigger_id, event_id, action_type, status, duration_ms, error_message, retry_count) VALUES
    ('result-1', 'job-1', 'trigger-1', '84532-1000-0', 'telegram', 'success', 120, NULL, 0),
    ('result-2', 'job-2', 'trigger-1', '84532-1001-0', 'telegram', 'success', 98, NULL, 0),
    ('result-3', 'job-3', 'trigger-1', '84532-1003-0', 'telegram', 'success', 110, NULL, 0),
    ('result-4', 'job-4', 'trigger-2', '84532-1001-0', 'rest', 'failed', 5020, 'timeout after 5000 ms', 3)
ON CONFLICT (id) DO NOTHING;

INSERT INTO agent_mcp_tokens (agent_id, token) VALUES (42, 'dev-token-agent-42'), (99, 'dev-token-agent-99')
ON CONFLICT (agent_id) DO UPDATE SET token = EXCLUDED.token;
