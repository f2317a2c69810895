ALTER TABLE did_controllers DROP COLUMN IF EXISTS ttl_seconds;
