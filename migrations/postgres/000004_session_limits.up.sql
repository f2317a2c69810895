-- What SAGE's session manager enforces in memory, made durable: a message counter, an
-- optional message budget and an optional idle timeout per session. Listing a client's or
-- server's sessions newest first is served by one index each instead of a sort.

ALTER TABLE sessions
    ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN max_messages BIGINT,
    ADD COLUMN idle_timeout_seconds INTEGER,
    ADD CONSTRAINT sessions_message_count_check CHECK (message_count >= 0),
    ADD CONSTRAINT sessions_max_messages_check CHECK (max_messages > 0),
    ADD CONSTRAINT sessions_idle_timeout_check CHECK (idle_timeout_seconds > 0);

DROP INDEX IF EXISTS idx_sessions_client_did;
DROP INDEX IF EXISTS idx_sessions_server_did;
CREATE INDEX idx_sessions_client_did_created_at ON sessions (client_did, created_at DESC);
CREATE INDEX idx_sessions_server_did_created_at ON sessions (server_did, created_at DESC);
