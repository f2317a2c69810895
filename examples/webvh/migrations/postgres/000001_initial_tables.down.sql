DROP TABLE IF EXISTS tails_files;
DROP TABLE IF EXISTS known_witness_registries;
DROP TABLE IF EXISTS server_policies;
DROP TABLE IF EXISTS admin_background_tasks;
DROP TABLE IF EXISTS verifiable_credentials;
DROP TABLE IF EXISTS attested_resources;
DROP TABLE IF EXISTS did_controllers;
