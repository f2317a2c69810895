-- SAGE's schema for the embedded SQLite default, in the shape PostgreSQL reaches at its
-- migration 5. Times are INTEGER microseconds since the Unix epoch (UTC), so comparisons
-- are exact and independent of any time zone; JSON is TEXT checked by json_valid.

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 255),
    client_did TEXT NOT NULL,
    server_did TEXT NOT NULL,
    session_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_activity INTEGER NOT NULL,
    metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    message_count INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    max_messages INTEGER CHECK (max_messages > 0),
    idle_timeout_seconds INTEGER CHECK (idle_timeout_seconds > 0),
    CONSTRAINT sessions_expires_at_check CHECK (expires_at > created_at)
);

CREATE INDEX idx_sessions_client_did_created_at ON sessions (client_did, created_at DESC);
CREATE INDEX idx_sessions_server_did_created_at ON sessions (server_did, created_at DESC);
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);
CREATE INDEX idx_sessions_created_at ON sessions (created_at);

CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY NOT NULL CHECK (length(nonce) BETWEEN 1 AND 255),
    session_id TEXT,
    used_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CONSTRAINT nonces_expires_at_check CHECK (expires_at > used_at)
);

CREATE INDEX idx_nonces_session_id ON nonces (session_id);
CREATE INDEX idx_nonces_expires_at ON nonces (expires_at);
-- No index on used_at: nothing looks nonces up by it, and every claim would pay for it.

CREATE TABLE dids (
    did TEXT PRIMARY KEY NOT NULL,
    public_key BLOB NOT NULL,
    owner_address TEXT NOT NULL,
    key_type TEXT NOT NULL DEFAULT 'Ed25519',
    revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    key_agreement_key BLOB,
    endpoint TEXT,
    capabilities TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(capabilities) AND json_type(capabilities) = 'array'),
    fetched_at INTEGER NOT NULL,
    stale_after INTEGER
);

CREATE INDEX idx_dids_owner_address ON dids (owner_address);
CREATE INDEX idx_dids_revoked ON dids (revoked) WHERE revoked = 1;
CREATE INDEX idx_dids_key_type ON dids (key_type);
CREATE INDEX idx_dids_stale_after ON dids (stale_after) WHERE stale_after IS NOT NULL;

-- Any update that does not set updated_at itself gets the current time, as the
-- PostgreSQL trigger does.
CREATE TRIGGER update_dids_updated_at
    AFTER UPDATE ON dids
    FOR EACH ROW
    WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE dids
    SET updated_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
    WHERE did = NEW.did;
END;
