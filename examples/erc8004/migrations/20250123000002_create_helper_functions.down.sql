DROP FUNCTION IF EXISTS update_updated_at_column();
