-- The values the server's models give in Python (default=False, True, {}, 0 and
-- "application/jsonld"), as defaults of the columns too, so that rows written by other
-- means (seeds, SQL, a backfill) get what the server would have written. The server always
-- supplies these columns itself, so what it writes and reads does not change. Nullability
-- is left as the server has it: making a column NOT NULL would refuse writes it accepts.
ALTER TABLE did_controllers ALTER COLUMN deactivated SET DEFAULT false;
ALTER TABLE attested_resources ALTER COLUMN media_type SET DEFAULT 'application/jsonld';
ALTER TABLE verifiable_credentials ALTER COLUMN revoked SET DEFAULT false;
ALTER TABLE verifiable_credentials ALTER COLUMN verified SET DEFAULT true;
ALTER TABLE admin_background_tasks ALTER COLUMN progress SET DEFAULT '{}';
ALTER TABLE server_policies ALTER COLUMN witness SET DEFAULT false;
ALTER TABLE server_policies ALTER COLUMN validity SET DEFAULT 0;
