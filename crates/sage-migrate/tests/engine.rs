//! The migration engine against real PostgreSQL and SQLite databases.

mod common;

use common::{dir, Db};
use sage_migrate::{ErrorKind, FindingKind, MigrationState, RunOptions, Target};

const CREATE_A: &str = "CREATE TABLE a (id integer PRIMARY KEY);";

both_dialects!(applies_everything_once_and_reverts, |db: Db| async move {
    let d = dir(&[
        ("000001_a.up.sql", CREATE_A),
        ("000001_a.down.sql", "DROP TABLE a;"),
        ("000002_b.up.sql", "CREATE TABLE b (id integer); INSERT INTO b VALUES (1); INSERT INTO b VALUES (2);"),
        ("000002_b.down.sql", "DROP TABLE b;"),
    ]);
    let mut m = db.migrator(d.path()).await;
    let report = m.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied.len(), 2);
    assert_eq!(report.version_after, Some(2));
    assert_eq!(db.scalar("SELECT count(*) FROM b").await, 2);
    let again = m.up(Target::Latest).await.unwrap();
    assert!(again.applied.is_empty(), "second run applies nothing");
    assert_eq!(db.scalar("SELECT count(*) FROM b").await, 2);

    let down = m.down(Target::Steps(1)).await.unwrap();
    assert_eq!(down.reverted.len(), 1);
    assert_eq!(db.tables().await, ["a", "sage_schema_history"]);
    m.down(Target::Latest).await.unwrap();
    assert_eq!(db.tables().await, ["sage_schema_history"]);
    assert_eq!(db.scalar("SELECT count(*) FROM sage_schema_history").await, 0);
});

both_dialects!(failed_migration_leaves_no_trace, |db: Db| async move {
    let d = dir(&[
        ("000001_a.up.sql", CREATE_A),
        (
            "000002_bad.up.sql",
            "CREATE TABLE b (id integer);\nINSERT INTO b VALUES (1);\n\nINSERT INTO missing_table VALUES (1);\n",
        ),
    ]);
    let mut m = db.migrator(d.path()).await;
    let err = m.up(Target::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MigrationFailed);
    let text = err.to_string();
    assert!(text.contains("000002_bad.up.sql"), "{text}");
    assert!(text.contains("statement 3 of 3 (line 4, column 1)"), "{text}");
    assert!(text.contains("missing_table"), "{text}");
    assert!(text.contains("fix the file"), "a fault in the file is called one: {text}");
    // Migration 1 committed on its own; nothing of migration 2 exists, no dirty marker.
    assert_eq!(db.tables().await, ["a", "sage_schema_history"]);
    assert_eq!(db.scalar("SELECT count(*) FROM sage_schema_history").await, 1);
    let status = m.status().await.unwrap();
    assert_eq!(status.version, Some(1));
    assert_eq!(status.pending, 1);

    // Fix the file; `up` just works.
    std::fs::write(d.path().join("000002_bad.up.sql"), "CREATE TABLE b (id integer);\nINSERT INTO b VALUES (1);\n")
        .unwrap();
    let mut m = db.migrator(d.path()).await;
    m.up(Target::Latest).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM b").await, 1);
});

both_dialects!(edited_deleted_and_out_of_order_are_reported_together, |db: Db| async move {
    let d = dir(&[
        ("000001_a.up.sql", CREATE_A),
        ("000002_b.up.sql", "CREATE TABLE b (id integer);"),
        ("000004_d.up.sql", "CREATE TABLE d (id integer);"),
    ]);
    db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    std::fs::write(d.path().join("000001_a.up.sql"), "CREATE TABLE a (id bigint PRIMARY KEY);").unwrap();
    std::fs::remove_file(d.path().join("000002_b.up.sql")).unwrap();
    std::fs::write(d.path().join("000003_c.up.sql"), "CREATE TABLE c (id integer);").unwrap();
    std::fs::write(d.path().join("5-broken.sql"), "SELECT 1;").unwrap();

    let mut m = db.migrator(d.path()).await;
    let status = m.status().await.unwrap();
    let found: Vec<(FindingKind, Option<String>)> = status.findings.iter().map(|f| (f.kind, f.file.clone())).collect();
    assert!(found.contains(&(FindingKind::Unparsable, Some("5-broken.sql".into()))), "{found:?}");
    assert!(found.contains(&(FindingKind::Edited, Some("000001_a.up.sql".into()))), "{found:?}");
    assert!(found.contains(&(FindingKind::OutOfOrder, Some("000003_c.up.sql".into()))), "{found:?}");
    assert!(status.findings.iter().any(|f| f.kind == FindingKind::Missing && f.version == Some(2)), "{found:?}");
    let states: Vec<MigrationState> = status.migrations.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [MigrationState::Edited, MigrationState::Missing, MigrationState::OutOfOrder, MigrationState::Applied]
    );

    let err = m.up(Target::Latest).await.unwrap_err();
    assert!(err.to_string().contains("5-broken.sql"), "{err}");
    assert!(!db.tables().await.contains(&"c".to_string()), "nothing ran");
});

both_dialects!(out_of_order_applies_when_allowed, |db: Db| async move {
    let d = dir(&[("000001_a.up.sql", CREATE_A), ("000003_c.up.sql", "CREATE TABLE c (id integer);")]);
    db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    std::fs::write(d.path().join("000002_b.up.sql"), "CREATE TABLE b (id integer);").unwrap();
    let err = db.migrator(d.path()).await.up(Target::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains("000002_b.up.sql"), "{err}");
    let options = RunOptions { allow_out_of_order: true, ..RunOptions::default() };
    let report = db.migrator_with(d.path(), options).await.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied.iter().map(|s| s.version).collect::<Vec<_>>(), [2]);
});

both_dialects!(no_transaction_migration_runs_statement_by_statement, |db: Db| async move {
    let index = match db.dialect() {
        sage_migrate::Dialect::Postgres => {
            "-- sage:no-transaction\nCREATE INDEX CONCURRENTLY idx_t_a ON t (a);\nCREATE INDEX CONCURRENTLY idx_t_b ON t (b);\nCREATE UNIQUE INDEX CONCURRENTLY idx_t_ab ON t (a, b);\n"
        }
        sage_migrate::Dialect::Sqlite => {
            "-- sage:no-transaction\nCREATE INDEX idx_t_a ON t (a);\nCREATE INDEX idx_t_b ON t (b);\nCREATE UNIQUE INDEX idx_t_ab ON t (a, b);\n"
        }
    };
    let d = dir(&[("1_t.up.sql", "CREATE TABLE t (a integer, b integer);"), ("2_idx.up.sql", index)]);
    let report = db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied[1].statements, 3);
    let indexes = match db.dialect() {
        sage_migrate::Dialect::Postgres => db.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 't'").await,
        sage_migrate::Dialect::Sqlite => {
            db.scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 't'").await
        }
    };
    assert_eq!(indexes, 3);
});

both_dialects!(failed_no_transaction_migration_resumes_where_it_stopped, |db: Db| async move {
    let d = dir(&[
        ("1_t.up.sql", "CREATE TABLE t (a integer);"),
        ("2_steps.up.sql", "-- sage:no-transaction\nINSERT INTO t VALUES (1);\nINSERT INTO nope VALUES (2);\nINSERT INTO t VALUES (3);\n"),
    ]);
    let err = db.migrator(d.path()).await.up(Target::Latest).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("statement 2 of 3 (line 3, column 1)") && text.contains("statements 1 to 1 completed"),
        "{text}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM t").await, 1);
    let status = db.migrator(d.path()).await.status().await.unwrap();
    assert_eq!(status.migrations[1].state, MigrationState::Partial);

    // The operator creates what was missing; the rerun does not repeat statement 1.
    db.exec("CREATE TABLE nope (a integer)").await;
    let report = db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied[0].resumed_at_statement, Some(1));
    assert_eq!(db.scalar("SELECT count(*) FROM t").await, 2);
    assert_eq!(db.scalar("SELECT sum(a) FROM t").await, 4);
});

both_dialects!(begin_commit_wrapped_files_stay_atomic, |db: Db| async move {
    let d = dir(&[(
        "1_wrapped.up.sql",
        "BEGIN;\nCREATE TABLE w (id integer);\nINSERT INTO nothing VALUES (1);\nCOMMIT;\n",
    )]);
    let err = db.migrator(d.path()).await.up(Target::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MigrationFailed, "{err}");
    assert!(err.to_string().contains("1_wrapped.up.sql"), "the error names the file: {err}");
    assert!(!db.tables().await.contains(&"w".to_string()), "the wrapper must not commit half a migration");
});

both_dialects!(goto_force_and_baseline, |db: Db| async move {
    let d = dir(&[
        ("1_a.up.sql", CREATE_A),
        ("1_a.down.sql", "DROP TABLE a;"),
        ("2_b.up.sql", "CREATE TABLE b (id integer);"),
        ("2_b.down.sql", "DROP TABLE b;"),
        ("3_c.up.sql", "CREATE TABLE c (id integer);"),
        ("3_c.down.sql", "DROP TABLE c;"),
    ]);
    let mut m = db.migrator(d.path()).await;
    m.goto(2).await.unwrap();
    assert_eq!(db.tables().await, ["a", "b", "sage_schema_history"]);
    m.goto(1).await.unwrap();
    assert_eq!(db.tables().await, ["a", "sage_schema_history"]);
    // force rewrites the record only.
    let report = m.force(3).await.unwrap();
    assert_eq!(report.version_after, Some(3));
    assert_eq!(db.tables().await, ["a", "sage_schema_history"]);
    assert_eq!(m.status().await.unwrap().version, Some(3));
    m.force(0).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM sage_schema_history").await, 0);
    // baseline: a schema that already exists is recorded, not re-created.
    m.baseline(1).await.unwrap();
    let status = m.status().await.unwrap();
    assert_eq!(status.migrations[0].state, MigrationState::Baseline);
    let err = m.baseline(1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "baseline twice is refused: {err}");
    assert!(matches!(err.inner(), sage_migrate::Error::NotEmpty), "the error the binary advises force for: {err}");
    m.up(Target::Latest).await.unwrap();
    assert_eq!(db.tables().await, ["a", "b", "c", "sage_schema_history"]);
});

both_dialects!(dry_run_changes_nothing_and_shows_sql, |db: Db| async move {
    let d = dir(&[("1_a.up.sql", CREATE_A)]);
    let options = RunOptions { dry_run: true, ..RunOptions::default() };
    let report = db.migrator_with(d.path(), options).await.up(Target::Latest).await.unwrap();
    assert!(report.applied[0].sql.as_deref().unwrap().contains("CREATE TABLE a"));
    assert!(db.tables().await.is_empty(), "dry run created {:?}", db.tables().await);
});

both_dialects!(repair_accepts_an_edit, |db: Db| async move {
    let d = dir(&[("1_a.up.sql", CREATE_A), ("2_b.up.sql", "CREATE TABLE b (id integer);")]);
    db.migrator(d.path()).await.up(Target::Steps(1)).await.unwrap();
    std::fs::write(d.path().join("1_a.up.sql"), "-- reformatted\nCREATE TABLE a (id integer PRIMARY KEY);").unwrap();
    let err = db.migrator(d.path()).await.up(Target::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "an edited migration stops `up`: {err}");
    assert!(err.to_string().contains("1_a.up.sql"), "the error names the file: {err}");
    let report = db.migrator(d.path()).await.repair().await.unwrap();
    assert!(report.notices[0].contains("version 1"), "{:?}", report.notices);
    db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    assert!(db.tables().await.contains(&"b".to_string()));
});

both_dialects!(crlf_checkout_is_not_an_edit, |db: Db| async move {
    let d = dir(&[("1_a.up.sql", "CREATE TABLE a (id integer);\nSELECT 1;\n")]);
    db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    std::fs::write(d.path().join("1_a.up.sql"), "\u{feff}CREATE TABLE a (id integer);\r\nSELECT 1;\r\n").unwrap();
    let status = db.migrator(d.path()).await.status().await.unwrap();
    assert!(status.findings.is_empty(), "{:?}", status.findings);
});

both_dialects!(dbmate_and_sqlx_formats_apply, |db: Db| async move {
    let dbmate = dir(&[(
        "20240101000000_init.sql",
        "-- migrate:up\nCREATE TABLE m (id integer);\n\n-- migrate:down\nDROP TABLE m;\n",
    )]);
    let mut m = db.migrator(dbmate.path()).await;
    m.up(Target::Latest).await.unwrap();
    assert!(db.tables().await.contains(&"m".to_string()));
    m.down(Target::Steps(1)).await.unwrap();
    assert!(!db.tables().await.contains(&"m".to_string()));
});

/// A transactional migration that waits for a table lock longer than the lock timeout fails
/// whole, says the file is fine, and applies once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_waits_for_a_table_lock_no_longer_than_the_lock_timeout() {
    let db = Db::new(sage_migrate::Dialect::Postgres).await;
    let d = dir(&[
        ("1_t.up.sql", "CREATE TABLE t (a integer);"),
        ("2_more.up.sql", "CREATE TABLE u (a integer);\nALTER TABLE t ADD COLUMN b integer;\n"),
    ]);
    let options = RunOptions { lock_timeout: std::time::Duration::from_secs(1), ..RunOptions::default() };
    db.migrator_with(d.path(), options.clone()).await.up(Target::Steps(1)).await.unwrap();
    let Db::Postgres(pg) = &db else { unreachable!() };
    let mut holder = sage_conn::connect(pg.settings()).await.unwrap();
    let reading = holder.transaction().await.unwrap();
    reading.query("SELECT count(*) FROM t", &[]).await.unwrap();

    // Bounded here too, so a migration that waits on regardless fails this test instead of
    // hanging it.
    let mut blocked = db.migrator_with(d.path(), options.clone()).await;
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), blocked.up(Target::Latest))
        .await
        .expect("the migration waited for the lock past its timeout")
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::MigrationFailed, "{text}");
    assert!(text.contains("statement 2 of 2") && text.contains("lock timeout"), "{text}");
    assert!(text.contains("the file is fine"), "{text}");
    assert_eq!(db.tables().await, ["sage_schema_history", "t"], "nothing of migration 2 was kept");

    reading.rollback().await.unwrap();
    db.migrator_with(d.path(), options).await.up(Target::Latest).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 't'").await, 2);
}

// Before, a `--` comment ran to the next LF: in a CR-only file everything after the first
// comment was comment, nothing ran, and the migration was recorded as applied.
both_dialects!(regression_files_with_any_line_endings_run_every_statement, |db: Db| async move {
    let d = dir(&[
        ("1_cr.up.sql", "-- first\rCREATE TABLE a (id integer);\r-- second\rCREATE TABLE b (id integer);\r"),
        ("2_crlf.up.sql", "-- third\r\nCREATE TABLE c (id integer);\r\n-- fourth\r\nCREATE TABLE d (id integer);\r\n"),
    ]);
    db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    assert_eq!(db.tables().await, ["a", "b", "c", "d", "sage_schema_history"]);
});

both_dialects!(regression_dbmate_errors_name_the_line_in_the_file, |db: Db| async move {
    let d = dir(&[(
        "001_a.sql",
        "-- migrate:up\n-- why\nCREATE TABLE a (id integer);\n\n  INSERT INTO missing VALUES (1);\n\n-- migrate:down\nDROP TABLE a;\n",
    )]);
    let err = db.migrator(d.path()).await.up(Target::Latest).await.unwrap_err();
    assert!(err.to_string().contains("statement 2 of 2 (line 5, column 3)"), "{err}");
    let d = dir(&[("001_a.sql", "-- migrate:up\nSELECT 1;\n\nSELECT 'open;\n-- migrate:down\n")]);
    let set = sage_migrate::MigrationSet::from_dir(d.path(), db.dialect()).unwrap();
    let problem = set.problems[0].to_string();
    assert!(problem.contains("line 4, column 8") && problem.contains("unterminated string literal"), "{problem}");
});

/// The bookkeeping statements are prepared once per connection: a migration that drops
/// every prepared statement of its session (inside a transaction, and in a migration that
/// runs outside one, whose progress is recorded between statements) neither fails nor
/// loses its history rows, and the migrations after it are recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_deallocates_prepared_statements_is_recorded() {
    let db = Db::new(sage_migrate::Dialect::Postgres).await;
    let d = dir(&[
        ("1_a.up.sql", "CREATE TABLE a (id integer);\nDEALLOCATE ALL;\nINSERT INTO a VALUES (1);"),
        (
            "2_b.up.sql",
            "-- sage:no-transaction\nCREATE TABLE b (id integer);\nDEALLOCATE ALL;\nINSERT INTO b VALUES (2);",
        ),
        ("3_c.up.sql", "CREATE TABLE c (id integer);"),
    ]);
    let report = db.migrator(d.path()).await.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied.len(), 3);
    assert_eq!(db.scalar("SELECT count(*) FROM sage_schema_history WHERE state = 'applied'").await, 3);
    assert_eq!(db.scalar("SELECT count(*) FROM a").await + db.scalar("SELECT count(*) FROM b").await, 2);
}
