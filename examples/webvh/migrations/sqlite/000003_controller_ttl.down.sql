ALTER TABLE did_controllers DROP COLUMN ttl_seconds;
