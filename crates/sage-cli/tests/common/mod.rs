#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `sage-db` with a clean environment, so that the developer's DATABASE_URL or DB_*
/// variables cannot leak into a test.
pub fn sage_db(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sage-db"));
    command.current_dir(cwd).env_clear();
    for keep in ["PATH", "HOME", "USER", "TMPDIR"] {
        if let Ok(value) = std::env::var(keep) {
            command.env(keep, value);
        }
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run sage-db")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

pub async fn pg_scalar(settings: &sage_conn::PgSettings, sql: &str) -> i64 {
    let client = sage_conn::connect(settings).await.expect("connect");
    client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
}
