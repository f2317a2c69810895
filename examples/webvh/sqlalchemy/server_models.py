"""The did:webvh server's tables, as its SQLAlchemy models declare them.

Written for SAGE DB's tests from the facts of the server's `app/db/models.py` (0.5.0):
table and column names, types, nullability, server defaults, foreign keys and the indexes
that `index=True` and `__table_args__` ask for. Only what reaches the DDL is here; the
server's constructors, relationships and Python-side defaults (`default=False`, `{}`,
"application/jsonld", 0), which `create_all` never emits, are left out on purpose.

`create_all.py` beside this file runs `Base.metadata.create_all` with these models, the way
the server's `provision()` does at start-up.
"""

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import declarative_base
from sqlalchemy.sql import func

Base = declarative_base()


def timestamp():
    return Column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class DidController(Base):
    __tablename__ = "did_controllers"

    scid = Column(String(255), primary_key=True, index=True)
    did = Column(String(500), nullable=False, index=True)
    domain = Column(String(255), nullable=False, index=True)
    namespace = Column(String(255), nullable=False, index=True)
    alias = Column(String(255), nullable=False, index=True)
    deactivated = Column(Boolean, nullable=False, index=True)
    logs = Column(JSON, nullable=False)
    witness_file = Column(JSON, nullable=True)
    whois_presentation = Column(JSON, nullable=True)
    parameters = Column(JSON, nullable=False)
    document = Column(JSON, nullable=False)
    avatar = Column(Text, nullable=True)
    created = timestamp()
    updated = timestamp()

    __table_args__ = (
        Index("idx_controller_namespace_alias", "namespace", "alias"),
        Index("idx_controller_namespace_deactivated", "namespace", "deactivated"),
        Index("idx_controller_domain_deactivated", "domain", "deactivated"),
        Index("idx_controller_alias_deactivated", "alias", "deactivated"),
    )


class AttestedResource(Base):
    __tablename__ = "attested_resources"

    resource_id = Column(String(255), primary_key=True, index=True)
    scid = Column(String(255), ForeignKey("did_controllers.scid"))
    resource_type = Column(String(100), nullable=False, index=True)
    resource_name = Column(String(255), nullable=False)
    did = Column(String(500), nullable=False, index=True)
    attested_resource = Column(JSON, nullable=False)
    media_type = Column(String(255), nullable=False)
    created = timestamp()
    updated = timestamp()

    __table_args__ = (
        Index("idx_attested_scid_resource_type", "scid", "resource_type"),
        Index("idx_attested_did_resource_type", "did", "resource_type"),
    )


class VerifiableCredential(Base):
    __tablename__ = "verifiable_credentials"

    credential_id = Column(String(500), primary_key=True, index=True)
    scid = Column(String(255), ForeignKey("did_controllers.scid"), nullable=False, index=True)
    issuer_did = Column(String(500), nullable=False, index=True)
    credential_type = Column(JSON, nullable=False)
    subject_id = Column(String(500), nullable=True, index=True)
    verifiable_credential = Column(JSON, nullable=False)
    valid_from = Column(DateTime(timezone=True), nullable=True)
    valid_until = Column(DateTime(timezone=True), nullable=True)
    revoked = Column(Boolean, nullable=False, index=True)
    verified = Column(Boolean, nullable=False)
    verification_method = Column(String(500), nullable=True)
    created = timestamp()
    updated = timestamp()

    __table_args__ = (
        Index("idx_credential_scid_revoked", "scid", "revoked"),
        Index("idx_credential_issuer_revoked", "issuer_did", "revoked"),
        Index("idx_credential_subject_revoked", "subject_id", "revoked"),
    )


class BackgroundTask(Base):
    __tablename__ = "admin_background_tasks"

    task_id = Column(String(36), primary_key=True, index=True)
    task_type = Column(String(50), nullable=False, index=True)
    status = Column(String(20), nullable=False, index=True)
    progress = Column(JSON)
    message = Column(Text)
    created_at = timestamp()
    updated_at = timestamp()

    __table_args__ = (Index("idx_task_type_status", "task_type", "status"),)


class ServerPolicy(Base):
    __tablename__ = "server_policies"

    policy_id = Column(String(50), primary_key=True)
    version = Column(String(20))
    witness = Column(Boolean)
    watcher = Column(String(500))
    portability = Column(Boolean)
    prerotation = Column(Boolean)
    endorsement = Column(Boolean)
    validity = Column(Integer)
    witness_registry_url = Column(String(500))
    policy_data = Column(JSON)
    created_at = timestamp()
    updated_at = timestamp()


class KnownWitnessRegistry(Base):
    __tablename__ = "known_witness_registries"

    registry_id = Column(String(50), primary_key=True)
    registry_type = Column(String(50), nullable=False, index=True)
    registry_data = Column(JSON, nullable=False)
    meta = Column(JSON)
    created_at = timestamp()
    updated_at = timestamp()


class WitnessInvitation(Base):
    __tablename__ = "witness_invitations"

    witness_did = Column(String(255), primary_key=True)
    invitation_id = Column(String(255), nullable=True, index=True)
    invitation_url = Column(Text, nullable=False)
    invitation_payload = Column(JSON, nullable=False)
    label = Column(String(255))
    goal_code = Column(String(255))
    goal = Column(String(255))
    created_at = timestamp()
    updated_at = timestamp()


class TailsFile(Base):
    __tablename__ = "tails_files"

    tails_hash = Column(String(100), primary_key=True, index=True)
    file_content_hex = Column(Text, nullable=False)
    file_size = Column(Integer, nullable=False)
    created_at = timestamp()
    updated_at = timestamp()
