-- 0.5.0: witness invitations, as the server's model makes the table (json payload, an
-- ix_ index on invitation_id). A 0.4 database gains it here, as create_all gave it.
CREATE TABLE witness_invitations (
    witness_did VARCHAR(255) NOT NULL,
    invitation_id VARCHAR(255),
    invitation_url TEXT NOT NULL,
    invitation_payload JSON NOT NULL,
    label VARCHAR(255),
    goal_code VARCHAR(255),
    goal VARCHAR(255),
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (witness_did)
);
CREATE INDEX ix_witness_invitations_invitation_id ON witness_invitations (invitation_id);
