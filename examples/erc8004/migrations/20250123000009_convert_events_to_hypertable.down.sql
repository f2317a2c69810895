DROP INDEX IF EXISTS idx_events_block_number;
DROP INDEX IF EXISTS idx_events_validator_address;
DROP INDEX IF EXISTS idx_events_client_address;
DROP INDEX IF EXISTS idx_events_registry_type;
DROP INDEX IF EXISTS idx_events_agent_id;
DROP INDEX IF EXISTS idx_events_chain_id_created_at;
