-- Indexes that only cost writes. `index=True` on a primary key column gives it a second
-- index beside the primary key's own; a one-column index whose column leads a composite
-- index of the same table serves no lookup the composite one does not. The server's
-- queries (equality on these columns, alone or with the composite's second column) keep an
-- index to use, so it can live with this; create_all does not put them back, since it
-- skips tables that exist.
DROP INDEX ix_did_controllers_scid;
DROP INDEX ix_did_controllers_namespace;   -- idx_controller_namespace_alias leads with it
DROP INDEX ix_did_controllers_domain;      -- idx_controller_domain_deactivated
DROP INDEX ix_did_controllers_alias;       -- idx_controller_alias_deactivated
DROP INDEX ix_attested_resources_resource_id;
DROP INDEX ix_attested_resources_did;      -- idx_attested_did_resource_type
DROP INDEX ix_verifiable_credentials_credential_id;
DROP INDEX ix_verifiable_credentials_scid;        -- idx_credential_scid_revoked
DROP INDEX ix_verifiable_credentials_issuer_did;  -- idx_credential_issuer_revoked
DROP INDEX ix_verifiable_credentials_subject_id;  -- idx_credential_subject_revoked
DROP INDEX ix_admin_background_tasks_task_id;
DROP INDEX ix_admin_background_tasks_task_type;   -- idx_task_type_status
DROP INDEX ix_tails_files_tails_hash;
