-- sage:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_nonces_used_at ON nonces(used_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_nonces_session_id ON nonces(session_id);
