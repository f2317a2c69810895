CREATE INDEX IF NOT EXISTS idx_nonces_session_id ON nonces (session_id);
