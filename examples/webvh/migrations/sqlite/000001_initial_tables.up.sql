-- The did:webvh server's tables as of 0.4, exactly as its SQLAlchemy models make them on
-- SQLite with create_all at start-up: the models' types as declared (BOOLEAN, JSON and
-- DATETIME, which SQLite stores by affinity), CURRENT_TIMESTAMP as the only defaults (the
-- ORM fills in the others in Python; it writes times as 'YYYY-MM-DD HH:MM:SS.ffffff' text),
-- foreign keys without ON DELETE, no UNIQUE on (namespace, alias) (the server checks it
-- itself), and an ix_<table>_<column> index for every column the models mark index=True,
-- primary keys included. A database the server already made is therefore adopted by
-- `sage-db migrate up`, and the server's create_all on a database made here finds every
-- table and creates nothing. Changes come in later migrations, each saying why the server
-- can live with it.

CREATE TABLE did_controllers (
    scid VARCHAR(255) NOT NULL,
    did VARCHAR(500) NOT NULL,
    domain VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    alias VARCHAR(255) NOT NULL,
    deactivated BOOLEAN NOT NULL,
    logs JSON NOT NULL,
    witness_file JSON,
    whois_presentation JSON,
    parameters JSON NOT NULL,
    document JSON NOT NULL,
    avatar TEXT,
    created DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (scid)
);
CREATE INDEX ix_did_controllers_scid ON did_controllers (scid);
CREATE INDEX ix_did_controllers_did ON did_controllers (did);
CREATE INDEX ix_did_controllers_domain ON did_controllers (domain);
CREATE INDEX ix_did_controllers_namespace ON did_controllers (namespace);
CREATE INDEX ix_did_controllers_alias ON did_controllers (alias);
CREATE INDEX ix_did_controllers_deactivated ON did_controllers (deactivated);
CREATE INDEX idx_controller_namespace_alias ON did_controllers (namespace, alias);
CREATE INDEX idx_controller_namespace_deactivated ON did_controllers (namespace, deactivated);
CREATE INDEX idx_controller_domain_deactivated ON did_controllers (domain, deactivated);
CREATE INDEX idx_controller_alias_deactivated ON did_controllers (alias, deactivated);

CREATE TABLE attested_resources (
    resource_id VARCHAR(255) NOT NULL,
    scid VARCHAR(255),
    resource_type VARCHAR(100) NOT NULL,
    resource_name VARCHAR(255) NOT NULL,
    did VARCHAR(500) NOT NULL,
    attested_resource JSON NOT NULL,
    media_type VARCHAR(255) NOT NULL,
    created DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (resource_id),
    FOREIGN KEY (scid) REFERENCES did_controllers (scid)
);
CREATE INDEX ix_attested_resources_resource_id ON attested_resources (resource_id);
CREATE INDEX ix_attested_resources_resource_type ON attested_resources (resource_type);
CREATE INDEX ix_attested_resources_did ON attested_resources (did);
CREATE INDEX idx_attested_scid_resource_type ON attested_resources (scid, resource_type);
CREATE INDEX idx_attested_did_resource_type ON attested_resources (did, resource_type);

CREATE TABLE verifiable_credentials (
    credential_id VARCHAR(500) NOT NULL,
    scid VARCHAR(255) NOT NULL,
    issuer_did VARCHAR(500) NOT NULL,
    credential_type JSON NOT NULL,
    subject_id VARCHAR(500),
    verifiable_credential JSON NOT NULL,
    valid_from DATETIME,
    valid_until DATETIME,
    revoked BOOLEAN NOT NULL,
    verified BOOLEAN NOT NULL,
    verification_method VARCHAR(500),
    created DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (credential_id),
    FOREIGN KEY (scid) REFERENCES did_controllers (scid)
);
CREATE INDEX ix_verifiable_credentials_credential_id ON verifiable_credentials (credential_id);
CREATE INDEX ix_verifiable_credentials_scid ON verifiable_credentials (scid);
CREATE INDEX ix_verifiable_credentials_issuer_did ON verifiable_credentials (issuer_did);
CREATE INDEX ix_verifiable_credentials_subject_id ON verifiable_credentials (subject_id);
CREATE INDEX ix_verifiable_credentials_revoked ON verifiable_credentials (revoked);
CREATE INDEX idx_credential_scid_revoked ON verifiable_credentials (scid, revoked);
CREATE INDEX idx_credential_issuer_revoked ON verifiable_credentials (issuer_did, revoked);
CREATE INDEX idx_credential_subject_revoked ON verifiable_credentials (subject_id, revoked);

CREATE TABLE admin_background_tasks (
    task_id VARCHAR(36) NOT NULL,
    task_type VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL,
    progress JSON,
    message TEXT,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (task_id)
);
CREATE INDEX ix_admin_background_tasks_task_id ON admin_background_tasks (task_id);
CREATE INDEX ix_admin_background_tasks_task_type ON admin_background_tasks (task_type);
CREATE INDEX ix_admin_background_tasks_status ON admin_background_tasks (status);
CREATE INDEX idx_task_type_status ON admin_background_tasks (task_type, status);

CREATE TABLE server_policies (
    policy_id VARCHAR(50) NOT NULL,
    version VARCHAR(20),
    witness BOOLEAN,
    watcher VARCHAR(500),
    portability BOOLEAN,
    prerotation BOOLEAN,
    endorsement BOOLEAN,
    validity INTEGER,
    witness_registry_url VARCHAR(500),
    policy_data JSON,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (policy_id)
);

CREATE TABLE known_witness_registries (
    registry_id VARCHAR(50) NOT NULL,
    registry_type VARCHAR(50) NOT NULL,
    registry_data JSON NOT NULL,
    meta JSON,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (registry_id)
);
CREATE INDEX ix_known_witness_registries_registry_type ON known_witness_registries (registry_type);

CREATE TABLE tails_files (
    tails_hash VARCHAR(100) NOT NULL,
    file_content_hex TEXT NOT NULL,
    file_size INTEGER NOT NULL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (tails_hash)
);
CREATE INDEX ix_tails_files_tails_hash ON tails_files (tails_hash);
