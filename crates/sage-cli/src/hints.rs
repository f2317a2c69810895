//! Advice the command line adds to a library error: the libraries' messages speak of
//! what went wrong in their own terms, and only the binary knows which flag or variable
//! changes it.

/// The hint for a sage-ops error, naming the flag or variable that would change the outcome.
pub(crate) fn ops(error: &sage_ops::Error) -> Option<String> {
    use sage_ops::Error as E;
    let hint = match error {
        E::SchemaDiffers { .. } => "pass `--replace-schema` to replace the database's schema with the backup's".into(),
        E::KeyMissing { .. } => "set SAGE_BACKUP_PASSPHRASE or pass `--identity FILE`".into(),
        E::BadRecipient { .. } => "`--recipient` takes an age public key (age1…), as `age-keygen -y` prints it".into(),
        E::VerifyNeedsServer => "pass `--database-url` with a PostgreSQL server to verify the backup on".into(),
        E::UnknownEnvironment { .. } => "give `--seeds DIR` for seeds of your own".into(),
        E::BenchUnbounded => "pass `--duration` or `--operations`".into(),
        E::RolledBack(inner) => return ops(inner),
        // Verification's scratch database is made on the server of `--database-url`.
        E::Schema(sage_schema::Error::ScratchRefused { .. }) => {
            "grant CREATEDB to the role of `--database-url`, which verifies in a scratch database".into()
        }
        E::Schema(inner) => return schema(inner),
        _ => return None,
    };
    Some(hint)
}

/// The hint for a sage-schema error.
pub(crate) fn schema(error: &sage_schema::Error) -> Option<String> {
    use sage_schema::Error as E;
    let hint = match error {
        E::ReplayNeedsServer => {
            "give a postgres:// `--database-url`, or `--dev-url` with an empty PostgreSQL database".into()
        }
        E::ScratchRefused { .. } => "grant CREATEDB or pass `--dev-url` with an empty database".into(),
        E::UnknownFindingKind { .. } => "`--ignore` takes one of the kinds listed".into(),
        _ => return None,
    };
    Some(hint)
}

/// What to do about a store's known problem, in this binary's commands.
pub(crate) fn store(error: &sage_store::StoreError) -> Option<String> {
    use sage_store::Reason as R;
    let hint = match error.reason()? {
        R::NoSchema => "`sage-db migrate up` (or `sage-db up`) creates the schema".to_string(),
        R::SchemaBehind { needs, .. } => format!("`sage-db migrate up` upgrades the schema to version {needs}"),
        R::SchemaAhead { .. } => "run a sage-db as new as the schema; `sage-db migrate status` shows it".to_string(),
        R::SchemaDiffers { .. } => "`sage-db schema validate` lists every difference".to_string(),
        R::NoSessionKey => {
            "generate a key file with `sage-db keys generate --key-file /etc/sage/session.keys`".to_string()
        }
        R::BadSessionKey => "generate a new key with `sage-db keys generate --key-file FILE`".to_string(),
        R::Unencrypted => "`sage-db keys rotate` encrypts every stored key".to_string(),
        _ => return None,
    };
    Some(hint)
}

/// What to do about a migration error, in this binary's terms (its options and commands).
pub(crate) fn migrate(error: &sage_migrate::Error) -> Option<String> {
    use sage_migrate::{Error as E, FindingKind};
    const STATE: &str = "`sage-db migrate status` shows the state; `sage-db migrate force` or `repair` resolves it";
    let hint = match error.inner() {
        E::LockTimeout { .. } | E::Busy { .. } => "raise `--lock-timeout` to wait longer".to_string(),
        E::NotEmpty => "`sage-db migrate force V` rewrites the record instead".to_string(),
        E::StatementFailed { cause, .. } if cause.contended => "`sage-db migrate up` runs it again".to_string(),
        E::StatementFailed { .. } => "after fixing the file, `sage-db migrate up` applies it".to_string(),
        E::NoSourceDirectory => "give `--source DIR`: the embedded migrations are not files to add to".to_string(),
        E::Pooler { .. } => {
            "give `--direct-url URL` (or set DIRECT_URL) to migrate over a direct connection to the server".to_string()
        }
        E::PeerTableTaken { peer, .. } => {
            format!("leave out `--keep-in-step {peer}`, or move the other tool's table out of the way first")
        }
        E::Refused { findings } if findings.iter().any(|f| f.kind == FindingKind::OutOfOrder) => {
            // Not force: that would record the file as applied without running it.
            "renumber the out-of-order migration, or apply it with `--allow-out-of-order`".to_string()
        }
        e if e.kind() == sage_migrate::ErrorKind::State => STATE.to_string(),
        _ => return None,
    };
    Some(hint)
}

/// What to do about a migration finding that `status` or `validate` reports, when an
/// option of this binary is the answer.
pub(crate) fn finding(kind: sage_migrate::FindingKind) -> Option<&'static str> {
    use sage_migrate::FindingKind as K;
    match kind {
        K::OutOfOrder => Some("renumber it, or apply it with `sage-db migrate up --allow-out-of-order`"),
        K::Edited => Some("`sage-db migrate repair` accepts the file as it is now"),
        K::Partial => Some("`sage-db migrate up` resumes it"),
        K::PeerDirty => Some("`sage-db migrate force V` records version V as applied without running anything"),
        K::PeerConflict => Some("`--source DIR` reads the migrations from another directory"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_a_flag_changes_names_the_flag() {
        let differs = sage_ops::Error::SchemaDiffers { file: "b.dump".into(), why: "tables differ".into() };
        assert!(ops(&differs).unwrap().contains("--replace-schema"));
        // Inside a rolled-back restore the inner refusal decides.
        let rolled = sage_ops::Error::RolledBack(Box::new(sage_ops::Error::VerifyNeedsServer));
        assert!(ops(&rolled).unwrap().contains("--database-url"));
        assert!(ops(&sage_ops::Error::invalid("bad manifest")).is_none());
        let scratch = sage_schema::Error::ScratchRefused { server: "postgres://h/db".into(), reason: "denied".into() };
        assert!(schema(&scratch).unwrap().contains("--dev-url"));
        assert!(!ops(&sage_ops::Error::Schema(scratch)).unwrap().contains("--dev-url"));
    }
}
