-- 0.5.0: witness invitations. An existing 0.4 database gains the table here; with
-- create_all it did too, but a column added to an existing table never would have.
CREATE TABLE witness_invitations (
    witness_did VARCHAR(255) PRIMARY KEY,
    invitation_id VARCHAR(255),
    invitation_url TEXT NOT NULL,
    invitation_payload JSONB NOT NULL,
    label VARCHAR(255),
    goal_code VARCHAR(255),
    goal VARCHAR(255),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_witness_invitation_id ON witness_invitations (invitation_id);
