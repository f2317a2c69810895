-- Every index on nonces is written by every claim, and nothing reads nonces by session:
-- cleanup goes by expires_at.
DROP INDEX IF EXISTS idx_nonces_session_id;
