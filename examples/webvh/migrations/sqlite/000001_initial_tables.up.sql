-- The did:webvh server's tables as of 0.4: DID controllers with their logs, witness files
-- and whois presentations, attested resources, credentials, background tasks, the server
-- policy, known witness registries and tails files. Unlike create_all, every change after
-- this one is a migration, so upgrades add columns instead of skipping them.

CREATE TABLE did_controllers (
    scid VARCHAR(255) PRIMARY KEY,
    did VARCHAR(500) NOT NULL,
    domain VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    alias VARCHAR(255) NOT NULL,
    deactivated INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    logs TEXT NOT NULL CHECK (json_valid(logs)),
    witness_file TEXT,
    whois_presentation TEXT,
    parameters TEXT NOT NULL,
    document TEXT NOT NULL,
    avatar TEXT,
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The application assumed this; the database now guarantees it.
    CONSTRAINT did_controllers_namespace_alias_key UNIQUE (namespace, alias)
);
CREATE INDEX idx_controller_did ON did_controllers (did);
CREATE INDEX idx_controller_namespace_deactivated ON did_controllers (namespace, deactivated);
CREATE INDEX idx_controller_domain_deactivated ON did_controllers (domain, deactivated);
CREATE INDEX idx_controller_alias_deactivated ON did_controllers (alias, deactivated);

CREATE TABLE attested_resources (
    resource_id VARCHAR(255) PRIMARY KEY,
    scid VARCHAR(255) REFERENCES did_controllers (scid) ON DELETE CASCADE,
    resource_type VARCHAR(100) NOT NULL,
    resource_name VARCHAR(255) NOT NULL,
    did VARCHAR(500) NOT NULL,
    attested_resource TEXT NOT NULL,
    media_type VARCHAR(255) NOT NULL DEFAULT 'application/jsonld',
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX idx_attested_scid_resource_type ON attested_resources (scid, resource_type);
CREATE INDEX idx_attested_did_resource_type ON attested_resources (did, resource_type);

CREATE TABLE verifiable_credentials (
    credential_id VARCHAR(500) PRIMARY KEY,
    scid VARCHAR(255) NOT NULL REFERENCES did_controllers (scid) ON DELETE CASCADE,
    issuer_did VARCHAR(500) NOT NULL,
    credential_type TEXT NOT NULL,
    subject_id VARCHAR(500),
    verifiable_credential TEXT NOT NULL,
    valid_from TEXT,
    valid_until TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    verified INTEGER NOT NULL DEFAULT 1,
    verification_method VARCHAR(500),
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT verifiable_credentials_validity_check CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from)
);
CREATE INDEX idx_credential_scid_revoked ON verifiable_credentials (scid, revoked);
CREATE INDEX idx_credential_issuer_revoked ON verifiable_credentials (issuer_did, revoked);
CREATE INDEX idx_credential_subject_revoked ON verifiable_credentials (subject_id, revoked);

CREATE TABLE admin_background_tasks (
    task_id VARCHAR(36) PRIMARY KEY,
    task_type VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(progress)),
    message TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX idx_task_type_status ON admin_background_tasks (task_type, status);

CREATE TABLE server_policies (
    policy_id VARCHAR(50) PRIMARY KEY,
    version VARCHAR(20),
    witness INTEGER NOT NULL DEFAULT 0,
    watcher VARCHAR(500),
    portability INTEGER,
    prerotation INTEGER,
    endorsement INTEGER,
    validity INTEGER NOT NULL DEFAULT 0,
    witness_registry_url VARCHAR(500),
    policy_data TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE known_witness_registries (
    registry_id VARCHAR(50) PRIMARY KEY,
    registry_type VARCHAR(50) NOT NULL,
    registry_data TEXT NOT NULL,
    meta TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX idx_registry_type ON known_witness_registries (registry_type);

CREATE TABLE tails_files (
    tails_hash VARCHAR(100) PRIMARY KEY,
    file_content_hex TEXT NOT NULL,
    file_size INTEGER NOT NULL CHECK (file_size >= 0),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
