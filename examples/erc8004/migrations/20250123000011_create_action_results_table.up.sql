CREATE TABLE action_results (
    id TEXT PRIMARY KEY DEFAULT gen_random_uuid()::TEXT,
    job_id TEXT NOT NULL,
    trigger_id TEXT,
    event_id TEXT, -- no foreign key: events' key is (id, created_at)
    action_type TEXT NOT NULL CHECK (action_type IN ('telegram', 'rest', 'mcp')),
    status TEXT NOT NULL CHECK (status IN ('success', 'failed', 'retrying')),
    executed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    duration_ms INTEGER,
    error_message TEXT,
    response_data JSONB,
    retry_count INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT fk_trigger FOREIGN KEY (trigger_id) REFERENCES triggers (id) ON DELETE SET NULL
);

CREATE INDEX idx_action_results_trigger_id ON action_results (trigger_id);
CREATE INDEX idx_action_results_event_id ON action_results (event_id);
CREATE INDEX idx_action_results_status ON action_results (status);
CREATE INDEX idx_action_results_executed_at ON action_results (executed_at DESC);
CREATE INDEX idx_action_results_action_type ON action_results (action_type);
