//! `sage-db migrate adopt` on databases whose schema was made without a migration tool (an
//! ORM's create_all at start-up): the newest migration prefix that makes exactly the live
//! schema is recorded, the rest is applied by `up`, and a schema that matches no prefix
//! changes nothing.

mod common;

use common::{run, sage_db, stderr, stdout, write_dir};

const FILES: &[(&str, &str)] = &[
    ("000001_items.up.sql", "CREATE TABLE items (id integer PRIMARY KEY, label text NOT NULL);"),
    ("000002_index.up.sql", "CREATE INDEX items_label ON items (label);"),
    ("000003_tags.up.sql", "CREATE TABLE tags (id integer PRIMARY KEY, name text NOT NULL);"),
];

/// What the application's start-up made: the objects of migrations 1 and 2, with data.
const CREATED_AT_STARTUP: &str = "CREATE TABLE items (id integer PRIMARY KEY, label text NOT NULL);
CREATE INDEX items_label ON items (label);
INSERT INTO items VALUES (1, 'kept');";

fn migrate(url: &str, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    run(sage_db(cwd.path()).arg("migrate").args(args).arg("--source").arg(dir).args(["--database-url", url]))
}

fn adopt_then_up(url: &str, count: impl Fn(&str) -> i64) {
    let dir = write_dir(FILES);
    let out = migrate(url, dir.path(), &["adopt"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("migrations 1 to 2"), "{}", stdout(&out));
    let out = migrate(url, dir.path(), &["up"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(count("SELECT count(*) FROM items"), 1, "the data is kept");
    assert_eq!(count("SELECT count(*) FROM tags"), 0, "migration 3 ran");
    assert_eq!(count("SELECT count(*) FROM sage_schema_history"), 3);
}

#[test]
fn a_create_all_sqlite_database_is_adopted_without_loss() {
    let file = sage_testkit::SqliteFile::new();
    rusqlite::Connection::open(file.path()).unwrap().execute_batch(CREATED_AT_STARTUP).unwrap();
    adopt_then_up(&file.url(), |sql| {
        rusqlite::Connection::open(file.path()).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_all_postgres_database_is_adopted_without_loss() {
    let db = sage_testkit::database().await.unwrap();
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client.batch_execute(CREATED_AT_STARTUP).await.unwrap();
    let url = db.url();
    let settings = db.settings().clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        adopt_then_up(&url, |sql| rt.block_on(common::pg_scalar(&settings, sql)));
    })
    .await
    .unwrap();
}

#[test]
fn a_schema_no_prefix_makes_is_shown_and_nothing_is_recorded() {
    let file = sage_testkit::SqliteFile::new();
    rusqlite::Connection::open(file.path())
        .unwrap()
        .execute_batch("CREATE TABLE items (id integer PRIMARY KEY, label integer);")
        .unwrap();
    let dir = write_dir(FILES);
    let out = migrate(&file.url(), dir.path(), &["adopt"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("closest") && stdout(&out).contains("label"), "{}", stdout(&out));
    let conn = rusqlite::Connection::open(file.path()).unwrap();
    let history: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'sage_schema_history'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(history, 0, "nothing was recorded");
}

/// `up` itself adopts a database with the migrations' tables and no history: what the
/// application made is recorded, the rest applied, the data kept.
fn up_adopts(url: &str, count: impl Fn(&str) -> i64) {
    let dir = write_dir(FILES);
    let out = migrate(url, dir.path(), &["up"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("adopted") && stdout(&out).contains("migrations 1 to 2"), "{}", stdout(&out));
    assert_eq!(count("SELECT count(*) FROM items"), 1, "the data is kept");
    assert_eq!(count("SELECT count(*) FROM tags"), 0, "migration 3 ran");
    assert_eq!(count("SELECT count(*) FROM sage_schema_history WHERE state = 'baseline'"), 2);
    assert_eq!(count("SELECT count(*) FROM sage_schema_history WHERE state = 'applied'"), 1);
}

#[test]
fn up_adopts_a_create_all_sqlite_database() {
    let file = sage_testkit::SqliteFile::new();
    rusqlite::Connection::open(file.path()).unwrap().execute_batch(CREATED_AT_STARTUP).unwrap();
    up_adopts(&file.url(), |sql| {
        rusqlite::Connection::open(file.path()).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_adopts_a_create_all_postgres_database() {
    let db = sage_testkit::database().await.unwrap();
    sage_conn::connect(db.settings()).await.unwrap().batch_execute(CREATED_AT_STARTUP).await.unwrap();
    let (url, settings) = (db.url(), db.settings().clone());
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        up_adopts(&url, |sql| rt.block_on(common::pg_scalar(&settings, sql)));
    })
    .await
    .unwrap();
}

/// A schema no prefix makes: `up` shows the difference to the closest and changes nothing.
#[test]
fn up_on_a_schema_no_prefix_makes_changes_nothing() {
    let file = sage_testkit::SqliteFile::new();
    rusqlite::Connection::open(file.path())
        .unwrap()
        .execute_batch("CREATE TABLE items (id integer PRIMARY KEY, label integer); INSERT INTO items VALUES (1, 7);")
        .unwrap();
    let dir = write_dir(FILES);
    let out = migrate(&file.url(), dir.path(), &["up"]);
    assert!(!out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("closest") && said.contains("label") && said.contains("nothing was changed"), "{said}");
    let conn = rusqlite::Connection::open(file.path()).unwrap();
    let objects: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(objects, ["items"], "no history, no migration ran");
}

/// Tables that none of the migrations make are no reason to adopt or refuse: `up` applies
/// everything beside them.
#[test]
fn up_beside_unrelated_tables_applies_everything() {
    let file = sage_testkit::SqliteFile::new();
    rusqlite::Connection::open(file.path()).unwrap().execute_batch("CREATE TABLE other (x integer);").unwrap();
    let dir = write_dir(FILES);
    let out = migrate(&file.url(), dir.path(), &["up"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("adopted"), "{}", stdout(&out));
    let applied: i64 = rusqlite::Connection::open(file.path())
        .unwrap()
        .query_row("SELECT count(*) FROM sage_schema_history WHERE state = 'applied'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied, 3);
}

/// At version 1, the application made migration 2's index itself (as create_all makes a
/// new table at start-up): `up` records 2 as present instead of failing on "already
/// exists", then applies 3.
fn objects_made_ahead(url: &str, make_index: impl Fn(), count: impl Fn(&str) -> i64) {
    let dir = write_dir(FILES);
    let out = migrate(url, dir.path(), &["up", "--to", "1"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    make_index();
    let out = migrate(url, dir.path(), &["up"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("already holds exactly what migration 2"), "{}", stdout(&out));
    assert_eq!(count("SELECT count(*) FROM items"), 1, "the data is kept");
    assert_eq!(count("SELECT count(*) FROM tags"), 0, "migration 3 ran");
    assert_eq!(count("SELECT count(*) FROM sage_schema_history WHERE version = 2 AND state = 'baseline'"), 1);
}

#[test]
fn a_migrations_objects_made_ahead_are_recorded_not_run_on_sqlite() {
    let file = sage_testkit::SqliteFile::new();
    let path = file.path().to_path_buf();
    objects_made_ahead(
        &file.url(),
        || {
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch("CREATE INDEX items_label ON items (label); INSERT INTO items VALUES (1, 'kept');")
                .unwrap()
        },
        |sql| rusqlite::Connection::open(file.path()).unwrap().query_row(sql, [], |r| r.get(0)).unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrations_objects_made_ahead_are_recorded_not_run_on_postgres() {
    let db = sage_testkit::database().await.unwrap();
    let (url, settings) = (db.url(), db.settings().clone());
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let make = || {
            rt.block_on(async {
                sage_conn::connect(&settings)
                    .await
                    .unwrap()
                    .batch_execute("CREATE INDEX items_label ON items (label); INSERT INTO items VALUES (1, 'kept');")
                    .await
                    .unwrap()
            })
        };
        objects_made_ahead(&url, make, |sql| rt.block_on(common::pg_scalar(&settings, sql)));
    })
    .await
    .unwrap();
}

/// A role without CREATEDB cannot make the scratch database a replay needs. Beside tables
/// none of the migrations create, `up` does not need one and applies everything; beside
/// the migrations' own tables it refuses, changing nothing and saying how to adopt, and
/// `migrate adopt --dev-url` with an empty database of the user's then adopts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_createdb_is_told_how_to_adopt() {
    let (unrelated, made, dev) = (
        sage_testkit::database().await.unwrap(),
        sage_testkit::database().await.unwrap(),
        sage_testkit::database().await.unwrap(),
    );
    let role = format!("nocreatedb_{}", made.name().rsplit('_').next().unwrap());
    let admin = sage_conn::connect(made.settings()).await.unwrap();
    admin.batch_execute(&format!("CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD 'not-a-secret'")).await.unwrap();
    let mut urls = Vec::new();
    for db in [&unrelated, &made] {
        let client = sage_conn::connect(db.settings()).await.unwrap();
        client
            .batch_execute(&format!(
                "GRANT ALL ON DATABASE {} TO {role}; GRANT ALL ON SCHEMA public TO {role};",
                sage_conn::quote_ident(db.name())
            ))
            .await
            .unwrap();
        let s = db.settings();
        urls.push(format!("postgres://{role}:not-a-secret@{}:{}/{}?sslmode=disable", s.host, s.port, s.dbname));
    }
    sage_conn::connect(unrelated.settings())
        .await
        .unwrap()
        .batch_execute("CREATE TABLE other (x integer);")
        .await
        .unwrap();
    admin.batch_execute(CREATED_AT_STARTUP).await.unwrap();
    admin.batch_execute(&format!("ALTER TABLE items OWNER TO {role}")).await.unwrap();
    let dev_url = dev.url();
    let (made_settings, unrelated_settings) = (made.settings().clone(), unrelated.settings().clone());
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = write_dir(FILES);

        let out = migrate(&urls[0], dir.path(), &["up"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let applied = "SELECT count(*) FROM sage_schema_history WHERE state = 'applied'";
        assert_eq!(rt.block_on(common::pg_scalar(&unrelated_settings, applied)), 3);

        let out = migrate(&urls[1], dir.path(), &["up"]);
        assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
        let said = stderr(&out);
        assert!(
            said.contains("(items)") && said.contains("CREATEDB") && said.contains("migrate adopt --dev-url"),
            "{said}"
        );
        let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
        assert_eq!(rt.block_on(common::pg_scalar(&made_settings, tables)), 1, "nothing was changed");

        let out = migrate(&urls[1], dir.path(), &["adopt", "--dev-url", &dev_url]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let out = migrate(&urls[1], dir.path(), &["up"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(rt.block_on(common::pg_scalar(&made_settings, "SELECT count(*) FROM items")), 1, "the data is kept");
        assert_eq!(rt.block_on(common::pg_scalar(&made_settings, applied)), 1, "only migration 3 ran");
    })
    .await
    .unwrap();
}
