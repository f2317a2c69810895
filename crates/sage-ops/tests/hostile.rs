//! Backups as an attacker or an accident leaves them: tampered manifests, tampered dumps,
//! another database's backup, grants that must survive. Each hostile input is refused
//! with a message that says why, nothing it carries is executed, and the database is
//! exactly as it was.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sage_conn::Target;
use sage_ops::backup::{backup, PgFormat};
use sage_ops::manifest::manifest_path;
use sage_ops::{restore, Decryption, Encryption, SecretString};

mod common;

use common::*;

/// A change an attacker makes to a manifest.
type ManifestEdit = Box<dyn FnOnce(&mut serde_json::Value)>;
/// A change an attacker makes to a plain SQL dump.
type DumpEdit = Box<dyn Fn(String) -> String>;

fn read_manifest(file: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(manifest_path(file)).unwrap()).unwrap()
}

/// A copy of `file` and its manifest in a directory of its own (so the file name the
/// manifest records still matches), the manifest changed by `edit`.
fn tampered(file: &Path, case: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = file.parent().unwrap().join(case);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &copy).unwrap();
    let mut manifest = read_manifest(file);
    edit(&mut manifest);
    std::fs::write(manifest_path(&copy), manifest.to_string()).unwrap();
    copy
}

/// Rows written after the backup, so "untouched" differs from the backup's contents.
async fn drift(pg: &sage_conn::PgSettings) {
    sage_conn::connect(pg)
        .await
        .unwrap()
        .batch_execute("INSERT INTO nonces (nonce, expires_at) VALUES ('after-backup', now() + interval '1 hour')")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_manifests_are_refused_and_run_nothing() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let touch = format!("\\! touch {}", marker.display());
    let plain = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    drift(db.settings()).await;
    let before = pg_contents(db.settings()).await;

    // Table names built to break out of a quoted identifier, a string, a dollar-quoted
    // block or a psql script line; row counts and fields with impossible values.
    let hostile_tables = [
        format!("public.x$sage_verify$;\n{touch}\n--"),
        format!("public.\"; {touch}; --"),
        format!("public.x'; {touch}; --"),
        format!("public.\\\\x\n{touch}"),
        "public.$$; DROP TABLE sessions; $$".to_string(),
    ];
    let mut cases: Vec<(String, PathBuf, &str)> = Vec::new();
    for (i, table) in hostile_tables.iter().enumerate() {
        let t = table.clone();
        let name = format!("table{i}");
        cases.push((
            format!("table name {table:?}"),
            tampered(&plain.file, &name, move |m| m["tables"][t] = 1.into()),
            "verification failed",
        ));
    }
    let edits: Vec<(&str, ManifestEdit, &str)> = vec![
        ("negative count", Box::new(|m| m["tables"]["public.nonces"] = (-1).into()), "negative"),
        ("wrong count", Box::new(|m| m["tables"]["public.nonces"] = 7.into()), "public.nonces"),
        ("wrong size", Box::new(|m| m["size"] = 12.into()), "truncated or was replaced"),
        ("wrong checksum", Box::new(|m| m["sha256"] = "ab".repeat(32).into()), "corrupted"),
        ("checksum not hex", Box::new(|m| m["sha256"] = format!("$x$; {}", "z".repeat(60)).into()), "sha256"),
        ("kind with a command", Box::new(|m| m["kind"] = "custom; \\! id".into()), "kind"),
        ("unknown dialect", Box::new(|m| m["dialect"] = "mysql".into()), "dialect"),
        ("file elsewhere", Box::new(|m| m["file"] = "../../etc/passwd".into()), "file"),
        ("unknown field", Box::new(|m| m["run"] = "\\! id".into()), "unknown field"),
        ("unknown format", Box::new(|m| m["format"] = "sage-db backup 9".into()), "format"),
        ("made-up seal", Box::new(|m| m["seal"] = serde_json::json!({"key": "AAAA", "mac": "00"})), "altered"),
    ];
    for (i, (what, edit, expected)) in edits.into_iter().enumerate() {
        let name = format!("edit{i}");
        cases.push((what.to_string(), tampered(&plain.file, &name, edit), expected));
    }
    for (what, file, expected) in cases {
        let err = restore::restore(&target, &file, &Decryption::default(), &replace_nothing())
            .await
            .expect_err(&what)
            .to_string();
        assert!(err.contains(expected), "{what}: {err}");
        assert!(!err.contains('\n'), "{what}: one line: {err}");
        let verify = restore::verify(&target, &file, &Decryption::default()).await;
        assert!(verify.is_err(), "{what}: verify accepted it");
        assert!(!marker.exists(), "{what}: a command from the manifest ran");
        assert_eq!(pg_contents(db.settings()).await, before, "{what}: the database changed");
    }

    // A manifest far larger than any real one is not read into memory.
    let huge = plain.file.with_file_name("huge.dump");
    std::fs::copy(&plain.file, &huge).unwrap();
    let mut out = std::fs::File::create(manifest_path(&huge)).unwrap();
    out.write_all(&vec![b' '; 17 << 20]).unwrap();
    let err = restore::inspect(&huge, &Decryption::default()).unwrap_err().to_string();
    assert!(err.contains("larger than any"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_backups_manifest_cannot_be_changed_without_the_key() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let passphrase = SecretString::from("a passphrase for the seal".to_string());
    let keys = Decryption { passphrase: Some(passphrase.clone()), identities: vec![] };
    let sealed = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::Passphrase(passphrase)), quiet())
        .await
        .unwrap();
    assert!(sealed.manifest.seal.is_some());
    let inspected = restore::inspect(&sealed.file, &keys).unwrap();
    assert_eq!(inspected.authenticity, sage_ops::manifest::Authenticity::Sealed);
    drift(db.settings()).await;
    let before = pg_contents(db.settings()).await;

    let edits: Vec<(&str, ManifestEdit, &str)> = vec![
        ("a row count", Box::new(|m| m["tables"]["public.nonces"] = 1.into()), "altered"),
        ("the history", Box::new(|m| m["history"] = serde_json::json!([])), "altered"),
        ("the seal removed", Box::new(|m| m.as_object_mut().unwrap().remove("seal").map(drop).unwrap()), "no seal"),
        ("the mac", Box::new(|m| m["seal"]["mac"] = "00".repeat(32).into()), "altered"),
        ("the key", Box::new(|m| m["seal"]["key"] = "bm90IGEga2V5".into()), "age"),
    ];
    for (i, (what, edit, expected)) in edits.into_iter().enumerate() {
        let file = tampered(&sealed.file, &format!("sealed{i}"), edit);
        let err = restore::restore(&target, &file, &keys, &replace_nothing()).await.expect_err(what).to_string();
        assert!(err.contains(expected), "{what}: {err}");
        assert_eq!(pg_contents(db.settings()).await, before, "{what}");
    }
    // Untouched, it restores; without the passphrase, it is refused before anything runs.
    let err = restore::restore(&target, &sealed.file, &Decryption::default(), &replace_nothing()).await.unwrap_err();
    assert!(matches!(&err, sage_ops::Error::KeyMissing { .. }), "{err}");
    assert!(err.to_string().contains("is encrypted"), "{err}");
    let report = restore::restore(&target, &sealed.file, &keys, &replace_nothing()).await.unwrap();
    assert_eq!(report.authenticity, sage_ops::manifest::Authenticity::Sealed);
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text
}

/// Rewrites a plain backup's dump and its manifest's checksum, as an attacker with write
/// access to the backup directory can.
fn rewrite_dump(file: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let copy = file.with_file_name(name);
    let sql = edit(gunzip(file));
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&copy).unwrap(), flate2::Compression::fast());
    gz.write_all(sql.as_bytes()).unwrap();
    gz.finish().unwrap();
    let (sha256, size) = sage_ops::manifest::hash_file(&copy).unwrap();
    let mut manifest = read_manifest(file);
    manifest["file"] = name.into();
    manifest["sha256"] = sha256.into();
    manifest["size"] = size.into();
    std::fs::write(manifest_path(&copy), manifest.to_string()).unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_carrying_shell_commands_is_refused_before_it_reaches_the_server() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let plain = backup(&target, &options(dir.path(), PgFormat::SqlGz, Encryption::None), quiet()).await.unwrap();
    drift(db.settings()).await;
    let before = pg_contents(db.settings()).await;
    let m = marker.display().to_string();
    let attacks: Vec<(&str, DumpEdit, &str)> = vec![
        (
            "a psql shell escape",
            Box::new(move |sql| sql.replacen('\n', &format!("\n\\! touch {m}\n"), 1)),
            "meta-command",
        ),
        ("an include", Box::new(|sql| format!("{sql}\n\\i /etc/passwd\n")), "meta-command"),
        (
            "COPY TO PROGRAM",
            Box::new({
                let m = marker.display().to_string();
                move |sql| format!("{sql}\nCOPY (SELECT 1) TO PROGRAM 'touch {m}';\n")
            }),
            "COPY",
        ),
        (
            "a COMMIT AND CHAIN half-way",
            Box::new(|sql| sql.replacen("CREATE TABLE", "COMMIT AND CHAIN;\nCREATE TABLE", 1)),
            "transaction control",
        ),
        (
            // Bare COMMITs (pg_dump writes them around large objects) are skipped, so
            // what follows still rolls back with everything else.
            "a bare COMMIT, then a failure",
            Box::new(|sql| sql.replacen("CREATE TABLE", "COMMIT;\nSELECT 1/0;\nCREATE TABLE", 1)),
            "division by zero",
        ),
        (
            "a COPY to a program behind a comment",
            Box::new({
                let m = marker.display().to_string();
                move |sql| format!("{sql}\n/* looks harmless */ copy (select 1) to program 'touch {m}';\n")
            }),
            "COPY",
        ),
        (
            "string rules switched off",
            Box::new(|sql| format!("SET standard_conforming_strings TO off;\n{sql}")),
            "standard_conforming_strings",
        ),
        ("a truncated statement", Box::new(|sql| format!("{sql}\nCREATE TABLE cut (x int")), "truncated"),
        (
            "a failing statement at the end",
            Box::new(|sql| format!("{sql}\nDROP TABLE public.sessions CASCADE; SELECT 1/0;\n")),
            "division by zero",
        ),
    ];
    for (i, (what, edit, expected)) in attacks.into_iter().enumerate() {
        let file = rewrite_dump(&plain.file, &format!("attack{i}.sql.gz"), edit);
        let err = restore::restore(&target, &file, &Decryption::default(), &replace_nothing())
            .await
            .expect_err(what)
            .to_string();
        assert!(err.contains(expected), "{what}: {err}");
        assert!(!marker.exists(), "{what}: the command ran");
        assert_eq!(pg_contents(db.settings()).await, before, "{what}: the database changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_databases_backup_is_refused_unless_replacing_the_schema_is_asked_for() {
    let sage = migrated_pg().await;
    let other = sage_testkit::database().await.unwrap();
    sage_conn::connect(other.settings())
        .await
        .unwrap()
        // It shares one table name with SAGE's schema, which alone does not make it SAGE's.
        .batch_execute(
            "CREATE TABLE threat_models (id int PRIMARY KEY, name text); INSERT INTO threat_models VALUES (1, 'tm');
             CREATE TABLE sessions (token text);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let foreign = backup(
        &Target::Postgres(other.settings().clone()),
        &options(dir.path(), PgFormat::Custom, Encryption::None),
        quiet(),
    )
    .await
    .unwrap();
    let target = Target::Postgres(sage.settings().clone());
    let before = pg_contents(sage.settings()).await;
    let err = restore::restore(&target, &foreign.file, &Decryption::default(), &replace_nothing()).await.unwrap_err();
    // The refusal carries the file for the caller; the message names no command-line flag.
    assert!(matches!(&err, sage_ops::Error::SchemaDiffers { file, .. } if *file == foreign.file), "{err}");
    let err = err.to_string();
    assert!(err.contains("different schema") && !err.contains("--"), "{err}");
    assert_eq!(pg_contents(sage.settings()).await, before);

    // A SAGE backup after one more migration on the target is the same schema: accepted.
    let own = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    restore::restore(&target, &own.file, &Decryption::default(), &replace_nothing()).await.unwrap();

    let replace = restore::RestoreOptions { replace_schema: true, ..Default::default() };
    restore::restore(&target, &foreign.file, &Decryption::default(), &replace).await.unwrap();
    let tables: Vec<String> = pg_contents(sage.settings()).await.into_keys().collect();
    assert_eq!(tables, vec!["public.sessions".to_string(), "public.threat_models".to_string()]);
}

/// Roles are cluster-wide and tests share a cluster: each test names its own.
fn role(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("{prefix}_{}", Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_grants_and_default_privileges_are_as_they_were_in_the_backup() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let (app, owner, gone) = (role("app"), role("owner"), role("gone"));
    let admin = sage_conn::connect(db.settings()).await.unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {app} LOGIN; CREATE ROLE {owner}; CREATE ROLE {gone};
             GRANT SELECT, INSERT ON sessions, nonces TO {app};
             GRANT SELECT ON dids TO {gone};
             ALTER TABLE dids OWNER TO {owner};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {app};
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    // Drift: the grants are revoked and one role disappears from the server.
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON sessions, nonces FROM {app}; ALTER TABLE dids OWNER TO CURRENT_USER;
             REVOKE ALL ON dids FROM {gone}; DROP ROLE {gone};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {app};"
        ))
        .await
        .unwrap();
    let report = restore::restore(&target, &plain.file, &Decryption::default(), &replace_nothing()).await.unwrap();
    assert!(report.skipped.iter().any(|s| s.contains(&gone)), "the missing role is reported: {:?}", report.skipped);

    let row = admin
        .query_one(
            "SELECT has_table_privilege($1, 'public.sessions', 'SELECT'), has_table_privilege($1, 'public.nonces', 'INSERT'),
                    has_schema_privilege($1, 'public', 'USAGE'), has_schema_privilege($1, 'public', 'CREATE'),
                    (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'dids'),
                    EXISTS (SELECT 1 FROM pg_default_acl a JOIN pg_namespace n ON n.oid = a.defaclnamespace
                            WHERE n.nspname = 'public' AND array_to_string(a.defaclacl, ',') LIKE '%' || $1 || '=r/%')",
            &[&app],
        )
        .await
        .unwrap();
    let (select, insert, usage, create, dids_owner, default_acl): (bool, bool, bool, bool, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    assert!(select && insert, "the app role's grants are back");
    assert!(usage, "the app role can reach its tables in public");
    assert!(!create, "REVOKE CREATE ON SCHEMA public FROM PUBLIC is kept");
    assert_eq!(dids_owner, owner);
    assert!(default_acl, "default privileges are restored");

    // And the application role can actually read its tables afterwards.
    admin.batch_execute(&format!("SET ROLE {app}; SELECT count(*) FROM sessions; RESET ROLE;")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_public_schema_was_recreated_restores_with_its_privileges() {
    let db = sage_testkit::database().await.unwrap();
    let target = Target::Postgres(db.settings().clone());
    let reader = role("reader");
    sage_conn::connect(db.settings())
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public; CREATE ROLE {reader};
             GRANT USAGE ON SCHEMA public TO {reader};
             CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1), (2);
             GRANT SELECT ON public.t TO {reader};"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = backup(&target, &options(dir.path(), PgFormat::SqlGz, Encryption::None), quiet()).await.unwrap();
    restore::restore(&target, &plain.file, &Decryption::default(), &replace_nothing()).await.unwrap();
    let client = sage_conn::connect(db.settings()).await.unwrap();
    let row = client
        .query_one(
            "SELECT has_schema_privilege($1, 'public', 'USAGE'), has_table_privilege($1, 'public.t', 'SELECT'), (SELECT count(*) FROM public.t)",
            &[&reader],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0) && row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i64>(2), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_backup_swapped_for_a_plain_one_is_refused() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let passphrase = SecretString::from("the operator's passphrase".to_string());
    let keys = Decryption { passphrase: Some(passphrase.clone()), identities: vec![] };
    let sealed = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::Passphrase(passphrase)), quiet())
        .await
        .unwrap();
    let plain = backup(&target, &options(&dir.path().join("plain"), PgFormat::Custom, Encryption::None), quiet())
        .await
        .unwrap();
    drift(db.settings()).await;
    let before = pg_contents(db.settings()).await;
    // The attacker puts a plain backup of their own under the encrypted backup's name.
    std::fs::copy(&plain.file, &sealed.file).unwrap();
    let mut manifest = read_manifest(&plain.file);
    manifest["file"] = sealed.file.file_name().unwrap().to_string_lossy().into_owned().into();
    std::fs::write(manifest_path(&sealed.file), manifest.to_string()).unwrap();
    let err = restore::restore(&target, &sealed.file, &keys, &replace_nothing()).await.unwrap_err().to_string();
    assert!(err.contains("calls the backup unencrypted"), "{err}");
    assert_eq!(pg_contents(db.settings()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_read_and_written_only_as_regular_files_never_through_links() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // A link left under a `.partial` name would receive the next backup's plaintext.
    let stolen = outside.path().join("stolen");
    std::fs::write(&stolen, b"untouched").unwrap();
    let trap = dir.path().join("sage_backup_20990101_000000.dump.partial");
    std::os::unix::fs::symlink(&stolen, &trap).unwrap();
    let made = backup(&target, &options(dir.path(), PgFormat::SqlGz, Encryption::None), quiet()).await.unwrap();
    assert!(made.pruned.contains(&trap), "the leftover link is removed: {:?}", made.pruned);
    assert!(std::fs::symlink_metadata(&trap).is_err());
    assert_eq!(std::fs::read(&stolen).unwrap(), b"untouched");

    // A backup file that is a symbolic link, or a FIFO, is refused without waiting.
    let link = dir.path().join("link");
    std::fs::create_dir(&link).unwrap();
    let linked = link.join(made.file.file_name().unwrap());
    std::os::unix::fs::symlink(&made.file, &linked).unwrap();
    std::fs::copy(manifest_path(&made.file), manifest_path(&linked)).unwrap();
    let err = restore::restore(&target, &linked, &Decryption::default(), &replace_nothing()).await.unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let fifo_dir = dir.path().join("fifo");
    std::fs::create_dir(&fifo_dir).unwrap();
    let fifo = fifo_dir.join(made.file.file_name().unwrap());
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::copy(manifest_path(&made.file), manifest_path(&fifo)).unwrap();
    let started = std::time::Instant::now();
    let err = restore::restore(&target, &fifo, &Decryption::default(), &replace_nothing()).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_sqlite_backups_are_refused_and_leave_the_file_as_it_was() {
    let file = sage_testkit::SqliteFile::new();
    let path = file.path().to_path_buf();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('a'), ('b');",
        )
        .unwrap();
    let target = Target::Sqlite(sage_conn::SqliteLocation::File(path.clone()));
    let dir = tempfile::tempdir().unwrap();
    let passphrase = SecretString::from("sqlite passphrase".to_string());
    let keys = Decryption { passphrase: Some(passphrase.clone()), identities: vec![] };
    let plain = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    let sealed = backup(
        &target,
        &options(&dir.path().join("sealed"), PgFormat::Custom, Encryption::Passphrase(passphrase)),
        quiet(),
    )
    .await
    .unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch("INSERT INTO notes (body) VALUES ('after');").unwrap();
    let before = sqlite_contents(&path);
    let cases: Vec<(PathBuf, &str)> = vec![
        (tampered(&plain.file, "count", |m| m["tables"]["notes"] = 9.into()), "notes"),
        (tampered(&plain.file, "dialect", |m| m["dialect"] = "postgres".into()), "kind"),
        (tampered(&sealed.file, "sealed", |m| m["tables"]["notes"] = 9.into()), "altered"),
        (tampered(&sealed.file, "downgraded", |m| m["encryption"] = "none".into()), "altered"),
    ];
    for (file, expected) in cases {
        let err = restore::restore(&target, &file, &keys, &replace_nothing()).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{}: {err}", file.display());
        assert_eq!(sqlite_contents(&path), before, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_runs_a_plain_dump_without_the_rights_to_reach_the_servers_programs() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let plain = backup(&target, &options(dir.path(), PgFormat::SqlGz, Encryption::None), quiet()).await.unwrap();
    // Where the server's operating-system user can write, so only the missing right stops it.
    let marker = std::env::temp_dir().join(format!("sage-verify-{}", role("marker")));
    let m = marker.display().to_string();
    let file = rewrite_dump(&plain.file, "hidden.sql.gz", move |sql| {
        format!("{sql}\nDO $x$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {m}'''; END $x$;\n")
    });
    let err = restore::verify(&target, &file, &Decryption::default()).await.unwrap_err().to_string();
    assert!(err.contains("permission denied") || err.contains("pg_execute_server_program"), "{err}");
    assert!(!marker.exists(), "the program ran");
    // An untouched backup verifies as before.
    let verified = restore::verify(&target, &plain.file, &Decryption::default()).await.unwrap();
    assert_eq!(verified.tables["public.nonces"], 50);
}
