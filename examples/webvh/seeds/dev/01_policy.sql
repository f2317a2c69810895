-- The server policy and witness registry the did:webvh server's tests start from.
INSERT INTO server_policies (policy_id, version, witness, watcher, portability, prerotation, endorsement, validity, witness_registry_url, policy_data)
VALUES ('active', '1.0', false, NULL, true, false, false, 0, NULL, '{"version": "1.0", "witness": false, "portability": true}')
ON CONFLICT (policy_id) DO NOTHING;

INSERT INTO known_witness_registries (registry_id, registry_type, registry_data, meta)
VALUES ('knownWitnesses', 'witnesses',
        '{"did:key:z6MkwitnessExample": {"name": "Example witness", "serviceEndpoint": "https://witness.example.com"}}',
        '{"created": "2024-01-01T00:00:00Z", "updated": "2024-01-01T00:00:00Z"}')
ON CONFLICT (registry_id) DO NOTHING;
