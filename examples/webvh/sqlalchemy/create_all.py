"""Runs the did:webvh server's start-up `create_all` against a database.

    python create_all.py URL [--rows]

URL is a PostgreSQL URL as libpq reads it (postgres://…, handed to psycopg2 as it is) or a
SQLAlchemy URL (sqlite:////absolute/path.db).

Prints one JSON object on stdout: {"ddl": [...]}, every DDL statement SQLAlchemy sent (an
empty list when every table already existed, which is what a SAGE DB database made by
`sage-db migrate up` must give). With --rows it then writes a few rows through the ORM, with
the values the server's code supplies, and prints them as {"ddl": [...], "rows": {...}}.

Used by crates/sage-cli/tests/webvh_create_all.rs; scripts/test installs SQLAlchemy.
"""

import datetime
import json
import sys

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from server_models import (
    AttestedResource,
    BackgroundTask,
    Base,
    DidController,
    KnownWitnessRegistry,
    ServerPolicy,
    TailsFile,
    VerifiableCredential,
    WitnessInvitation,
)

DDL_WORDS = ("CREATE", "ALTER", "DROP", "COMMENT")


def main(argv):
    if len(argv) < 2:
        print("usage: create_all.py URL [--rows]", file=sys.stderr)
        return 2
    engine = engine_for(argv[1])
    ddl = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(DDL_WORDS):
            ddl.append(" ".join(statement.split()))

    # What the server's provision() does: create_all with checkfirst.
    Base.metadata.create_all(engine, checkfirst=True)
    out = {"ddl": ddl}
    if "--rows" in argv[2:]:
        out["rows"] = write_rows(engine)
    print(json.dumps(out))
    return 0


def engine_for(url):
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg2

        # libpq reads the URL itself (percent-escapes, sslmode and all), as the server's
        # psycopg2 does under SQLAlchemy.
        return create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(url))
    return create_engine(url)


def write_rows(engine):
    """A controller with a resource and a credential, a task, the policy, a registry, an
    invitation and a tails file, as the server's storage code writes them (its Python-side
    defaults given explicitly, since they are not in the schema)."""
    scid = "QmSCID1"
    did = f"did:webvh:{scid}:example.com:people:alice"
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    with Session(engine) as s:
        s.add(
            DidController(
                scid=scid, did=did, domain="example.com", namespace="people", alias="alice",
                deactivated=False, logs=[{"versionId": "1-Qm", "state": {"id": did}}],
                witness_file=[], whois_presentation={}, parameters={"scid": scid},
                document={"id": did}, avatar="data:image/svg+xml;base64,PHN2Zy8+",
            )
        )
        s.flush()
        s.add(
            AttestedResource(
                resource_id="zQmResource", scid=scid, resource_type="anonCredsSchema",
                resource_name="example", did=did,
                attested_resource={"id": f"{did}/resources/zQmResource", "content": {"b": 2, "a": 1}},
                media_type="application/jsonld",
            )
        )
        s.add(
            VerifiableCredential(
                credential_id="urn:uuid:1", scid=scid, issuer_did=did, credential_type=["VerifiableCredential"],
                subject_id="did:example:subject", verifiable_credential={"issuer": did},
                valid_from=moment, valid_until=None, revoked=False, verified=True,
                verification_method=f"{did}#key-1",
            )
        )
        s.add(BackgroundTask(task_id="00000000-0000-0000-0000-000000000001", task_type="sync",
                             status="finished", progress={}, message="done"))
        s.add(ServerPolicy(policy_id="active", version="1.0", witness=False, watcher=None, portability=True,
                           prerotation=False, endorsement=False, validity=0, witness_registry_url=None,
                           policy_data={"version": "1.0"}))
        s.add(KnownWitnessRegistry(registry_id="knownWitnesses", registry_type="witnesses",
                                   registry_data={"did:key:z6Mk": {"name": "w"}}, meta={}))
        s.add(WitnessInvitation(witness_did="did:key:z6Mk", invitation_id="inv-1",
                                invitation_url="https://example.com?oob=e30", invitation_payload={"@id": "inv-1"},
                                label="w"))
        s.add(TailsFile(tails_hash="tails1", file_content_hex="00ff", file_size=2))
        s.commit()
        return {table.name: s.query(table).count() for table in Base.metadata.sorted_tables}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
