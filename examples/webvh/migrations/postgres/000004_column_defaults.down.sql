ALTER TABLE did_controllers ALTER COLUMN deactivated DROP DEFAULT;
ALTER TABLE attested_resources ALTER COLUMN media_type DROP DEFAULT;
ALTER TABLE verifiable_credentials ALTER COLUMN revoked DROP DEFAULT;
ALTER TABLE verifiable_credentials ALTER COLUMN verified DROP DEFAULT;
ALTER TABLE admin_background_tasks ALTER COLUMN progress DROP DEFAULT;
ALTER TABLE server_policies ALTER COLUMN witness DROP DEFAULT;
ALTER TABLE server_policies ALTER COLUMN validity DROP DEFAULT;
