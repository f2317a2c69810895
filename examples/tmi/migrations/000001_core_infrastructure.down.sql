DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS user_providers;
DROP TABLE IF EXISTS users;
DROP FUNCTION IF EXISTS update_updated_at_column();
DROP EXTENSION IF EXISTS "uuid-ossp";
