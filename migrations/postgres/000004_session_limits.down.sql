DROP INDEX IF EXISTS idx_sessions_server_did_created_at;
DROP INDEX IF EXISTS idx_sessions_client_did_created_at;
CREATE INDEX idx_sessions_client_did ON sessions(client_did);
CREATE INDEX idx_sessions_server_did ON sessions(server_did);

ALTER TABLE sessions
    DROP CONSTRAINT IF EXISTS sessions_idle_timeout_check,
    DROP CONSTRAINT IF EXISTS sessions_max_messages_check,
    DROP CONSTRAINT IF EXISTS sessions_message_count_check,
    DROP COLUMN IF EXISTS idle_timeout_seconds,
    DROP COLUMN IF EXISTS max_messages,
    DROP COLUMN IF EXISTS message_count;
