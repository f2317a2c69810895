DROP TABLE IF EXISTS agent_mcp_tokens;
