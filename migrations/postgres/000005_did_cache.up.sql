-- The fields SAGE's application resolves for a DID and needs cached: the key-agreement
-- (HPKE/X25519) key, the agent's endpoint and capabilities, when the entry was fetched and
-- when it goes stale.

ALTER TABLE dids
    ADD COLUMN key_agreement_key BYTEA,
    ADD COLUMN endpoint TEXT,
    ADD COLUMN capabilities JSONB NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN fetched_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    ADD COLUMN stale_after TIMESTAMPTZ,
    ADD CONSTRAINT dids_capabilities_array_check CHECK (jsonb_typeof(capabilities) = 'array');

CREATE INDEX idx_dids_stale_after ON dids (stale_after) WHERE stale_after IS NOT NULL;

-- The store sets updated_at itself, from the same clock that decides expiry; the trigger
-- now fills it in only for writers that leave it unchanged, as SAGE's Go code does.
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at = NOW();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
