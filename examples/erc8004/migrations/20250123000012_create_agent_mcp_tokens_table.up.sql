CREATE TABLE agent_mcp_tokens (
    agent_id BIGINT PRIMARY KEY,
    token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TRIGGER update_agent_mcp_tokens_updated_at BEFORE UPDATE ON agent_mcp_tokens
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
