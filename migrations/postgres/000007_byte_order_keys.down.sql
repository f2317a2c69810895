SET LOCAL lock_timeout = '5s';
ALTER TABLE dids
    ALTER COLUMN owner_address TYPE text COLLATE "default",
    ALTER COLUMN did TYPE text COLLATE "default";
ALTER TABLE sessions
    ALTER COLUMN server_did TYPE text COLLATE "default",
    ALTER COLUMN client_did TYPE text COLLATE "default",
    ALTER COLUMN id TYPE text COLLATE "default";
ALTER TABLE nonces ALTER COLUMN nonce TYPE text COLLATE "default";
