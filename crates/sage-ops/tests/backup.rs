//! Backup and restore against real databases: exact round trips, refusal of damaged
//! backups, all-or-nothing restores, retention, verification and TLS.

use sage_conn::{SqliteLocation, Target};
use sage_ops::backup::{backup, PgFormat};
use sage_ops::{restore, Decryption, Encryption, SecretString};

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_in_both_formats_encrypted_and_not() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let before = pg_contents(db.settings()).await;
    assert!(before.contains_key("public.sage_schema_history"));
    let dir = tempfile::tempdir().unwrap();
    let passphrase = SecretString::from("correct horse battery staple".to_string());
    for (format, encryption) in [
        (PgFormat::Custom, Encryption::None),
        (PgFormat::SqlGz, Encryption::None),
        (PgFormat::SqlGz, Encryption::Passphrase(passphrase.clone())),
    ] {
        let report = backup(&target, &options(dir.path(), format, encryption.clone()), quiet()).await.unwrap();
        assert_eq!(report.manifest.tables["public.nonces"], 50);
        assert_eq!(report.manifest.migration_version, Some(sage_store::SCHEMA_VERSION_POSTGRES));
        let name = report.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("sage_backup_"), "{name}");
        if format == PgFormat::SqlGz && matches!(encryption, Encryption::None) {
            assert!(name.ends_with(".sql.gz"), "{name}");
        }
        wipe_pg(db.settings()).await;
        assert!(pg_contents(db.settings()).await.is_empty());
        let keys = Decryption { passphrase: Some(passphrase.clone()), identities: vec![] };
        restore::restore(&target, &report.file, &keys, &replace_nothing()).await.unwrap();
        assert_eq!(pg_contents(db.settings()).await, before, "{format:?} {encryption:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_incomplete_backups_are_refused_before_anything_changes() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let before = pg_contents(db.settings()).await;
    let dir = tempfile::tempdir().unwrap();
    let report = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    let keys = Decryption::default();

    let corrupted = dir.path().join("corrupted.dump");
    let mut bytes = std::fs::read(&report.file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&corrupted, &bytes).unwrap();
    std::fs::copy(sage_ops::manifest::manifest_path(&report.file), sage_ops::manifest::manifest_path(&corrupted))
        .unwrap();
    let err = restore::restore(&target, &corrupted, &keys, &replace_nothing()).await.unwrap_err().to_string();
    assert!(err.contains("corrupted"), "{err}");

    let truncated = dir.path().join("truncated.dump");
    std::fs::write(&truncated, &std::fs::read(&report.file).unwrap()[..middle]).unwrap();
    std::fs::copy(sage_ops::manifest::manifest_path(&report.file), sage_ops::manifest::manifest_path(&truncated))
        .unwrap();
    let err = restore::restore(&target, &truncated, &keys, &replace_nothing()).await.unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    // What a backup killed half-way leaves: a .partial file, or a file without manifest.
    let killed = dir.path().join("killed.dump");
    std::fs::copy(&report.file, &killed).unwrap();
    let err = restore::restore(&target, &killed, &keys, &replace_nothing()).await.unwrap_err().to_string();
    assert!(err.contains("no readable manifest"), "{err}");

    assert_eq!(pg_contents(db.settings()).await, before, "nothing was touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_part_way_leaves_the_database_as_it_was() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let report = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    // Rows written after the backup, so "as it was" differs from the backup's contents.
    sage_conn::connect(db.settings())
        .await
        .unwrap()
        .batch_execute("INSERT INTO nonces (nonce, expires_at) VALUES ('later', now() + interval '1 hour')")
        .await
        .unwrap();
    let before = pg_contents(db.settings()).await;
    // A manifest whose counts do not match the data makes the final check fail, after the
    // whole dump has been loaded inside the transaction.
    let path = sage_ops::manifest::manifest_path(&report.file);
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    manifest["tables"]["public.nonces"] = serde_json::json!(49);
    std::fs::write(&path, manifest.to_string()).unwrap();
    let err = restore::restore(&target, &report.file, &Decryption::default(), &replace_nothing())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rolled back") && err.contains("public.nonces"), "{err}");
    assert_eq!(pg_contents(db.settings()).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_restores_into_a_scratch_database_and_retention_keeps_the_newest() {
    let db = migrated_pg().await;
    let target = Target::Postgres(db.settings().clone());
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for _ in 0..3 {
        let mut o = options(dir.path(), PgFormat::Custom, Encryption::None);
        o.keep = Some(2);
        files.push(backup(&target, &o, quiet()).await.unwrap());
    }
    assert_eq!(files[2].pruned, vec![files[0].file.clone()]);
    assert!(!files[0].file.exists() && files[1].file.exists() && files[2].file.exists());
    let verified = restore::verify(&target, &files[2].file, &Decryption::default()).await.unwrap();
    assert_eq!(verified.tables["public.dids"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_round_trip_encrypted_to_a_recipient() {
    let file = sage_testkit::SqliteFile::new();
    let target = Target::Sqlite(SqliteLocation::File(file.path().to_path_buf()));
    let env = sage_conn::Environment::from_pairs(Vec::new());
    let store = sage_store::Store::open(&target, sage_store::OpenOptions::defaults_for(&target, &env)).await.unwrap();
    for i in 0..20 {
        store.nonces().claim(&format!("n{i}"), None, chrono::Utc::now() + chrono::Duration::minutes(5)).await.unwrap();
    }
    store.close().await;
    drop(store);
    let before = sqlite_contents(file.path());
    let identity = age::x25519::Identity::generate();
    let identity_file = file.dir().join("backup.key");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity_file, identity.to_string().expose_secret()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let report = backup(
        &target,
        &options(dir.path(), PgFormat::Custom, Encryption::Recipients(vec![identity.to_public().to_string()])),
        quiet(),
    )
    .await
    .unwrap();
    assert!(report.file.to_string_lossy().ends_with(".sqlite.age"));
    assert_eq!(report.manifest.tables["nonces"], 20);
    // The encrypted file does not contain the data in the clear.
    assert!(!std::fs::read(&report.file).unwrap().windows(7).any(|w| w == b"nonces\0" || w == b"CREATE "));
    rusqlite::Connection::open(file.path()).unwrap().execute_batch("DELETE FROM nonces; DROP TABLE dids;").unwrap();
    let no_key = restore::restore(&target, &report.file, &Decryption::default(), &replace_nothing()).await.unwrap_err();
    assert!(
        matches!(&no_key, sage_ops::Error::KeyMissing { encryption, .. } if encryption == "recipients"),
        "{no_key}"
    );
    assert!(!no_key.to_string().contains("--identity"), "{no_key}");
    restore::restore(
        &target,
        &report.file,
        &Decryption { passphrase: None, identities: vec![identity_file] },
        &replace_nothing(),
    )
    .await
    .unwrap();
    assert_eq!(sqlite_contents(file.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_work_over_tls_with_sslmode_require() {
    let cluster =
        sage_testkit::PgCluster::start(sage_testkit::ClusterOptions { tls: true, ..Default::default() }).unwrap();
    let mut admin = cluster.admin_settings();
    admin.sslmode = sage_conn::SslMode::Require;
    sage_conn::connect(&admin).await.unwrap().batch_execute("CREATE DATABASE app").await.unwrap();
    let pg = admin.with_dbname("app");
    let target = Target::Postgres(pg.clone());
    sage_conn::connect(&pg)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = backup(&target, &options(dir.path(), PgFormat::Custom, Encryption::None), quiet()).await.unwrap();
    sage_conn::connect(&pg).await.unwrap().batch_execute("DELETE FROM t").await.unwrap();
    restore::restore(&target, &report.file, &Decryption::default(), &replace_nothing()).await.unwrap();
    assert_eq!(pg_contents(&pg).await.len(), 1);
    let n: i64 = sage_conn::connect(&pg).await.unwrap().query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_come_back_exactly_and_replace_the_databases_own() {
    let db = sage_testkit::database().await.unwrap();
    let target = Target::Postgres(db.settings().clone());
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE docs (id int PRIMARY KEY, body oid);
             INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to(repeat('page ' || g, 100), 'UTF8')) FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    let objects = || async {
        let client = sage_conn::connect(db.settings()).await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*), coalesce(md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, String>(1))
    };
    let dir = tempfile::tempdir().unwrap();
    let want = objects().await;
    for format in [PgFormat::Custom, PgFormat::SqlGz] {
        let made = backup(&target, &options(dir.path(), format, Encryption::None), quiet()).await.unwrap();
        // After the backup: one object gone, one added, as an application would.
        client
            .batch_execute("SELECT lo_unlink(body) FROM docs WHERE id = 1; SELECT lo_from_bytea(0, 'stray');")
            .await
            .unwrap();
        assert_ne!(objects().await, want);
        restore::restore(&target, &made.file, &Decryption::default(), &replace_nothing()).await.unwrap();
        assert_eq!(objects().await, want, "{format:?}");
    }
}
