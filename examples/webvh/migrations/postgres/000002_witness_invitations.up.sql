-- 0.5.0: witness invitations, as the server's model makes the table (json payload, an
-- ix_ index on invitation_id). A 0.4 database gains it here, as create_all gave it.
CREATE TABLE witness_invitations (
    witness_did varchar(255) NOT NULL,
    invitation_id varchar(255),
    invitation_url text NOT NULL,
    invitation_payload json NOT NULL,
    label varchar(255),
    goal_code varchar(255),
    goal varchar(255),
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (witness_did)
);
CREATE INDEX ix_witness_invitations_invitation_id ON witness_invitations (invitation_id);
