-- Caching hint served with did.jsonl: an example of an upgrade that adds a column to an
-- existing table, which provision()'s create_all silently skipped.
ALTER TABLE did_controllers ADD COLUMN ttl_seconds INTEGER CHECK (ttl_seconds IS NULL OR ttl_seconds > 0);
