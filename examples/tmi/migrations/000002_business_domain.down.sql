DROP TABLE IF EXISTS session_participants, collaboration_sessions, metadata, documents, diagrams, threats, threat_model_access, threat_models;
