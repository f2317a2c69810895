-- Reverting needs every id to be a UUID again; a non-UUID id makes this fail and change
-- nothing. Nonces whose session is gone lose their session reference.
ALTER TABLE nonces DROP CONSTRAINT IF EXISTS nonces_nonce_length_check;
ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_id_length_check;

ALTER TABLE sessions ALTER COLUMN id TYPE UUID USING id::uuid;
UPDATE nonces SET session_id = NULL
    WHERE session_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id::text = nonces.session_id);
ALTER TABLE nonces ALTER COLUMN session_id TYPE UUID USING session_id::uuid;

ALTER TABLE nonces ADD CONSTRAINT nonces_session_id_fkey
    FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE;
