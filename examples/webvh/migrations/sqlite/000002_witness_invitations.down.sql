DROP TABLE IF EXISTS witness_invitations;
