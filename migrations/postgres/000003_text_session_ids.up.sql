-- SAGE's session ids are 22-character base64url strings, not UUIDs, so ids become TEXT.
-- Nonces no longer reference sessions: deleting a session used to cascade to its nonces
-- and so reopened their replay window. A nonce now lives until it expires.

ALTER TABLE nonces DROP CONSTRAINT IF EXISTS nonces_session_id_fkey;

ALTER TABLE sessions ALTER COLUMN id TYPE TEXT USING id::text;
ALTER TABLE nonces ALTER COLUMN session_id TYPE TEXT USING session_id::text;

ALTER TABLE sessions ADD CONSTRAINT sessions_id_length_check CHECK (length(id) BETWEEN 1 AND 255);
ALTER TABLE nonces ADD CONSTRAINT nonces_nonce_length_check CHECK (length(nonce) BETWEEN 1 AND 255);
