CREATE TABLE threat_models (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    owner_email VARCHAR(320) NOT NULL REFERENCES users (email) ON DELETE RESTRICT ON UPDATE CASCADE,
    name VARCHAR(256) NOT NULL,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by VARCHAR(320) NOT NULL,
    threat_model_framework VARCHAR(20) NOT NULL DEFAULT 'STRIDE',
    issue_url VARCHAR(1024),
    CONSTRAINT threat_models_threat_model_framework_check CHECK (threat_model_framework IN ('CIA', 'STRIDE', 'LINDDUN', 'DIE', 'PLOT4ai'))
);
CREATE INDEX idx_threat_models_owner_email ON threat_models (owner_email);
CREATE INDEX idx_threat_models_framework ON threat_models (threat_model_framework);

CREATE TABLE threat_model_access (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    threat_model_id UUID NOT NULL REFERENCES threat_models (id) ON DELETE CASCADE,
    user_email VARCHAR(320) NOT NULL REFERENCES users (email) ON DELETE CASCADE ON UPDATE CASCADE,
    role VARCHAR(50) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT threat_model_access_threat_model_id_user_email_key UNIQUE (threat_model_id, user_email),
    CONSTRAINT threat_model_access_role_check CHECK (role IN ('owner', 'writer', 'reader'))
);
CREATE INDEX idx_threat_model_access_user_email ON threat_model_access (user_email);

CREATE TABLE threats (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    threat_model_id UUID NOT NULL REFERENCES threat_models (id) ON DELETE CASCADE,
    name VARCHAR(256) NOT NULL,
    description TEXT,
    severity VARCHAR(20),
    likelihood VARCHAR(20),
    risk_level VARCHAR(20),
    mitigation TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT threats_severity_check CHECK (severity IS NULL OR severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT threats_likelihood_check CHECK (likelihood IS NULL OR likelihood IN ('low', 'medium', 'high')),
    CONSTRAINT threats_risk_level_check CHECK (risk_level IS NULL OR risk_level IN ('low', 'medium', 'high', 'critical'))
);
CREATE INDEX idx_threats_threat_model_id_created_at ON threats (threat_model_id, created_at DESC);
CREATE INDEX idx_threats_severity ON threats (severity) WHERE severity IS NOT NULL;

CREATE TABLE diagrams (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    threat_model_id UUID NOT NULL REFERENCES threat_models (id) ON DELETE CASCADE,
    name VARCHAR(256) NOT NULL,
    type VARCHAR(50) NOT NULL DEFAULT 'DFD-1.0.0',
    content TEXT,
    metadata JSONB,
    cells JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT diagrams_type_check CHECK (type IN ('DFD-1.0.0'))
);
CREATE INDEX idx_diagrams_threat_model_id_type ON diagrams (threat_model_id, type);
CREATE INDEX idx_diagrams_cells ON diagrams USING gin (cells);

CREATE TABLE documents (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    threat_model_id UUID NOT NULL REFERENCES threat_models (id) ON DELETE CASCADE,
    name VARCHAR(256) NOT NULL,
    url VARCHAR(1024) NOT NULL,
    description VARCHAR(1024),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT documents_name_not_empty CHECK (length(trim(name)) > 0),
    CONSTRAINT documents_url_not_empty CHECK (length(trim(url)) > 0)
);
CREATE INDEX idx_documents_threat_model_id ON documents (threat_model_id);

CREATE TABLE metadata (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    entity_type VARCHAR(50) NOT NULL,
    entity_id UUID NOT NULL,
    key VARCHAR(128) NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT metadata_entity_type_check CHECK (entity_type IN ('threat_model', 'threat', 'diagram', 'document', 'source', 'cell')),
    CONSTRAINT metadata_key_format CHECK (key ~ '^[a-zA-Z0-9_-]+$'),
    CONSTRAINT metadata_value_not_empty CHECK (length(trim(value)) > 0 AND length(value) <= 65535)
);
CREATE UNIQUE INDEX idx_metadata_unique_key_per_entity ON metadata (entity_type, entity_id, key);

CREATE TABLE collaboration_sessions (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    threat_model_id UUID NOT NULL REFERENCES threat_models (id) ON DELETE CASCADE,
    diagram_id UUID REFERENCES diagrams (id) ON DELETE SET NULL,
    websocket_url VARCHAR(1024) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ,
    CONSTRAINT collaboration_sessions_websocket_url_not_empty CHECK (length(trim(websocket_url)) > 0),
    CONSTRAINT collaboration_sessions_expires_after_created CHECK (expires_at IS NULL OR expires_at > created_at)
);

CREATE TABLE session_participants (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    session_id UUID NOT NULL REFERENCES collaboration_sessions (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    left_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX idx_session_participants_active_unique ON session_participants (session_id, user_id) WHERE left_at IS NULL;

CREATE TRIGGER update_threat_models_updated_at BEFORE UPDATE ON threat_models FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_threats_updated_at BEFORE UPDATE ON threats FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_diagrams_updated_at BEFORE UPDATE ON diagrams FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
