-- sage:no-transaction
-- Every index on nonces is written by every claim, and nothing reads nonces by session or
-- by the time they were used: the session index served the foreign key that 000003
-- removed, and cleanup goes by expires_at. Dropped concurrently, so claims go on meanwhile.
DROP INDEX CONCURRENTLY IF EXISTS idx_nonces_session_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_nonces_used_at;
