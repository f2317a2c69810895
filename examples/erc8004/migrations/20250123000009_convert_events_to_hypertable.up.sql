-- With TimescaleDB installed and preloaded, events becomes a hypertable partitioned by
-- ingest time in 7-day chunks. Without it the table stays a plain table and the server says
-- so in a NOTICE: everything else works the same.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('events', 'created_at', chunk_time_interval => INTERVAL '7 days');
    ELSE
        RAISE NOTICE 'TimescaleDB is not available on this server; events stays a plain table';
    END IF;
END
$$;

CREATE INDEX idx_events_chain_id_created_at ON events (chain_id, created_at DESC);
CREATE INDEX idx_events_agent_id ON events (agent_id) WHERE agent_id IS NOT NULL;
CREATE INDEX idx_events_registry_type ON events (registry, event_type);
CREATE INDEX idx_events_client_address ON events (client_address) WHERE client_address IS NOT NULL;
CREATE INDEX idx_events_validator_address ON events (validator_address) WHERE validator_address IS NOT NULL;
CREATE INDEX idx_events_block_number ON events (chain_id, block_number);
