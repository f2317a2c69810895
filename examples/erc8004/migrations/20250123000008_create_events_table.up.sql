-- The primary key includes created_at so that events can become a TimescaleDB hypertable
-- (every unique index there must contain the partitioning column).
CREATE TABLE events (
    id TEXT NOT NULL, -- {chain_id}-{block_number}-{log_index}
    chain_id INTEGER NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    transaction_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    registry TEXT NOT NULL CHECK (registry IN ('identity', 'reputation', 'validation')),
    event_type TEXT NOT NULL,
    agent_id BIGINT,
    timestamp BIGINT NOT NULL, -- block time, unix seconds
    owner TEXT,
    token_uri TEXT,
    metadata_key TEXT,
    metadata_value TEXT,
    client_address TEXT,
    feedback_index BIGINT,
    score INTEGER CHECK (score BETWEEN 0 AND 100),
    tag1 TEXT,
    tag2 TEXT,
    file_uri TEXT,
    file_hash TEXT,
    validator_address TEXT,
    request_hash TEXT,
    response INTEGER,
    response_uri TEXT,
    response_hash TEXT,
    tag TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, created_at)
);

-- Every new event is announced on channel new_event with a JSON payload.
CREATE OR REPLACE FUNCTION notify_new_event()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM pg_notify('new_event', json_build_object(
        'event_id', NEW.id, 'chain_id', NEW.chain_id, 'block_number', NEW.block_number,
        'event_type', NEW.event_type, 'registry', NEW.registry)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify_trigger AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION notify_new_event();
