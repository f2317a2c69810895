DROP TRIGGER IF EXISTS update_dids_updated_at ON dids;
DROP FUNCTION IF EXISTS update_updated_at_column();
DROP TABLE IF EXISTS nonces;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS dids;
