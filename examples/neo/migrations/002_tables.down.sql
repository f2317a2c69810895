DROP TABLE IF EXISTS eventsourcing.events, monitoring.audit_logs, crosschain.cross_chain_operations, voting.voting_proposals,
    oracle.oracle_data_feeds, keymanagement.cryptographic_keys, sgx.sealed_data_items, auth.authentication_sessions,
    core.users, core.system_configuration;
