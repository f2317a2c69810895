CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ language 'plpgsql';

DROP INDEX IF EXISTS idx_dids_stale_after;

ALTER TABLE dids
    DROP CONSTRAINT IF EXISTS dids_capabilities_array_check,
    DROP COLUMN IF EXISTS stale_after,
    DROP COLUMN IF EXISTS fetched_at,
    DROP COLUMN IF EXISTS capabilities,
    DROP COLUMN IF EXISTS endpoint,
    DROP COLUMN IF EXISTS key_agreement_key;
